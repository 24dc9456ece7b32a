"""Issue 31, item 5: files a killed run leaves on the phone are removed by the next command.

Failure modes, each with its test: SIGKILL of `qwenchat run --engine process` mid-reply leaves
``tmp/prompt-*.txt``, ``tmp/session-<id>.json`` and the dialog state ``states/<id>/`` that no
later command removes (only `qwenchat clean`); a killed bench leaves ``config-*.json`` and
``prompt-*.txt`` that `bench --resume` keeps; the sweep removing files of a run that is still
alive, or of another computer's run (whose liveness cannot be known here).

The kill is a real SIGKILL of a real `qwenchat` process; oracles are the phone's own folder
listings (``ls`` in its shell) before and after, and hand-written names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.layout import PhoneLayout
from qwenchat.runner import open_engine
from qwenchat.runner.leftovers import file_key
from qwenchat.runner.session_files import owner_tag

SLOW = {"init_ms": 200, "prefill_chunk_ms": 20, "decode_tok_s": 25, "jitter_pct": 0}
LAYOUT = PhoneLayout()
TMP, STATES = LAYOUT.tmp_dir, LAYOUT.states_dir


def ls(dev, folder: str) -> list[str]:
    return sorted(dev.shell(f"ls -a {folder} 2>/dev/null").text.split())


def ours(names: list[str]) -> list[str]:
    return [n for n in names if n not in (".", "..")]


class Killed:
    """`qwenchat ARGS` in its own process, SIGKILLed once ``ready()`` is true."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenchat", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
        )  # fmt: skip
        self.out = bytearray()
        self.err = bytearray()
        self.readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _drain(pipe, into: bytearray) -> None:  # noqa: ANN001
        for chunk in iter(lambda: pipe.read1(4096), b""):
            into.extend(chunk)

    def kill_when(self, ready, timeout: float = 120) -> None:  # noqa: ANN001
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                assert self.proc.poll() is None, self.err.decode()
                assert time.monotonic() < deadline, self.err.decode()
                time.sleep(0.02)
            self.proc.send_signal(signal.SIGKILL)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=30)
            for reader in self.readers:
                reader.join(10)


def _other_runs_files(dev) -> tuple[list[str], list[str]]:
    """Files of a run that is alive (this test's process) and of another computer's run."""
    alive = file_key(owner_tag())
    elsewhere = "o4242_99_another-host"
    names = [f"prompt-{alive}-0a.txt", f"config-{elsewhere}-0b.json"]
    dev.shell(
        f"mkdir -p {TMP} {STATES}/alive-chat {STATES}/far-chat && cd {TMP} && touch {' '.join(names)}"
        f" && echo {owner_tag()} > {TMP}/state-alive-chat.owner"
        f" && echo qwenchat@another-host:4242:99 > {TMP}/state-far-chat.owner"
    )
    return names + ["state-alive-chat.owner", "state-far-chat.owner"], ["alive-chat", "far-chat"]


def test_a_chat_killed_mid_reply_leaves_nothing_after_the_next_command(bundled_phone):
    from test_chat_interactive import PROMPT, Terminal

    emu, dev = bundled_phone(profile=SLOW, time_scale=1.0)
    env = dict(os.environ, COLUMNS="200", LINES="40", TERM="xterm", LC_ALL="C.UTF-8")
    term = Terminal(["run", "--connect", emu.address, "--transport", "direct", "--engine",
                     "process"], env)  # fmt: skip
    try:
        term.read_until(PROMPT)
        term.type("/set max_tokens=400")  # a config of its own: tmp/session-<id>.json
        term.read_until(PROMPT)
        term.type("hello")  # the first turn saves the dialog state: states/<id>/
        term.read_until(PROMPT)
        term.type("Write about phones, 400 tokens")
        term.read_until(b"SIMULATED reply")
        term.proc.send_signal(signal.SIGKILL)
        term.proc.wait(30)
    finally:
        term.close()
    tmp, states = ours(ls(dev, TMP)), ours(ls(dev, STATES))
    # What the kill left: the turn's prompt, the chat's config, its state and owner.
    assert any(n.startswith("prompt-") for n in tmp), tmp
    assert any(n.startswith("session-") and n.endswith(".json") for n in tmp), tmp
    assert len(states) == 1 and any(n.endswith(".owner") for n in tmp), (states, tmp)
    keep_tmp, keep_states = _other_runs_files(dev)
    code = run_app(app, ["run", "--connect", emu.address, "--transport", "direct", "--engine",
                         "process", "--max-tokens", "4", "hi"])  # fmt: skip
    assert code == 0
    # No Genie of the killed chat runs on (it would write its profile after the sweep).
    assert dev.shell("pidof genie-t2t-run").text.split() == []
    assert ours(ls(dev, TMP)) == sorted(keep_tmp)
    assert ours(ls(dev, STATES)) == sorted(keep_states)


def test_bench_resume_removes_what_the_killed_bench_left(bundled_phone, capsys):
    emu, dev = bundled_phone(profile=SLOW, time_scale=1.0)
    bench = Killed("bench", "--connect", emu.address, "--transport", "direct", "--engine",
                   "process", "-p", "64", "-r", "3", "--gen-len", "64", "--warmup", "0",
                   "--cooldown", "0", "--seed", "7")  # fmt: skip

    def mid_trial() -> bool:
        return any(n.startswith("prompt-") for n in ls(dev, TMP))

    bench.kill_when(mid_trial)
    left = ours(ls(dev, TMP))
    assert any(n.startswith("prompt-") for n in left), left
    keep_tmp, _ = _other_runs_files(dev)
    code = run_app(app, ["bench", "--connect", emu.address, "--transport", "direct",
                         "--resume"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ours(ls(dev, TMP)) == sorted(keep_tmp)


def test_the_sweep_keeps_live_and_far_owners(bundled_phone):
    emu, dev = bundled_phone()
    keep_tmp, keep_states = _other_runs_files(dev)
    dead = "o999999_1_" + file_key(owner_tag()).split("_", 2)[2]  # this host, no such pid
    dev.shell(f"cd {TMP} && touch prompt-{dead}-1f.txt profile-{dead}-1f.json "
              f"&& mkdir -p {STATES}/dead-chat && echo x > {STATES}/dead-chat/kv "
              f"&& echo qwenchat@{dead.split('_', 2)[2]}:999999:1 > {TMP}/state-dead-chat.owner "
              f"&& echo '{{}}' > {TMP}/session-dead-chat.json")  # fmt: skip
    open_engine(dev, LAYOUT, kind="process")
    assert ours(ls(dev, TMP)) == sorted(keep_tmp)
    assert ours(ls(dev, STATES)) == sorted(keep_states)
