"""SIGTERM and SIGHUP reach the same clean-up paths as Ctrl-C, with their own exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

PROGRAM = """
import sys, time
from qwenchat import signals
signals.install()
try:
    print("ready", flush=True)  # inside: the signal may land the moment it is printed
    time.sleep(60)
except KeyboardInterrupt as exc:   # the clean-up path every command already has for Ctrl-C
    print("cleaned up", flush=True)
    raise SystemExit(signals.exit_code(exc))
"""


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_runs_the_ctrl_c_path_and_exits_with_its_code(signum, code):
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=20)
    assert out.strip() == "cleaned up"
    assert proc.returncode == code
    assert time.monotonic() - started < 10
