"""Every Click usage error is a usage error: the usage line, one error line, exit 2.

typer 0.28 vendors its own click; an error handler that catches the standalone click's
exceptions reports every typo as "unexpected ... report it" with exit 70. These run the real
installed command, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QWENCHAT = str(Path(sys.executable).with_name("qwenchat"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [QWENCHAT, *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "100"}, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "usage", "error"),
    [
        (["nosuch"], "Usage: qwenchat [OPTIONS] COMMAND [ARGS]...", "No such command 'nosuch'"),
        (["run", "--nosuch"], "Usage: qwenchat run [OPTIONS]", "No such option: --nosuch"),
        (["bench", "--gen-len", "abc"], "Usage: qwenchat bench [OPTIONS]", "'abc' is not a valid int"),
        (["bench", "-r"], "Usage: qwenchat bench [OPTIONS]", "Option '-r' requires an argument"),
        (["results", "compare", "last"], "Usage: qwenchat results compare [OPTIONS]", "Missing argument"),
        (["devices", "--auth-timeout", "x"], "Usage: qwenchat devices [OPTIONS]", "'x' is not a valid float"),
    ],
)
def test_usage_errors_show_the_usage_line_and_exit_2(args, usage, error):
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    assert usage in result.stderr
    assert error in result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_help_still_exits_0():
    result = _run("run", "-h")
    assert result.returncode == 0 and "Usage: qwenchat run" in result.stdout
    help_text = " ".join(result.stdout.split())
    assert "[default: /data/local/tmp/qwenchat]" in help_text  # --device-dir shows its default


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["emulator", "make-bundle", "/tmp/qwenchat-never", "--bin-size", "-1"],
         "error: --bin-size -1: give a size in MB above 0"),
        (["emulator", "make-bundle", "/tmp/qwenchat-never", "--arch", "v99"],
         "error: --arch v99: the emulated phone knows v73, v75 and v79"),
        (["emulator", "start", "--port", "0", "--profile", "/etc/hostname"],
         "error: --profile /etc/hostname is not a JSON device profile"),
        (["emulator", "start", "--port", "0", "--profile", "{DIR}/build.json"],
         'error: --profile {DIR}/build.json: genie_app_build must be "new" or "old", not \'newest\''),
    ],
)
def test_bad_emulator_input_is_one_line_before_anything_starts(args, error, tmp_path):
    (tmp_path / "build.json").write_text('{"genie_app_build": "newest"}')
    args = [a.replace("{DIR}", str(tmp_path)) for a in args]
    error = error.replace("{DIR}", str(tmp_path))
    result = _run(*args)
    assert result.returncode == 2 and result.stderr.startswith(error), result.stderr
    assert "Traceback" not in result.stderr
