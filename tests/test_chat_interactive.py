"""The interactive chat as a person uses it: `qwenchat run` in a real pseudo-terminal against
the emulated phone, typing lines, /commands and Ctrl-C, reading what the screen shows."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from qwenchat.layout import PhoneLayout

PROMPT = b">>> "


def _push_bundle(device, bundle) -> None:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets

    plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
    push_assets(device, plan, PhoneLayout(), overlap=False)


class Terminal:
    """`qwenchat run` attached to a pty: what it writes is what a screen would show."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenchat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,  # its own session: the pty is its controlling terminal
            preexec_fn=lambda: __import__("fcntl").ioctl(0, __import__("termios").TIOCSCTTY, 0),
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, pattern: bytes, timeout: float = 60.0) -> bytes:
        deadline = time.monotonic() + timeout
        start = len(self.screen)
        while pattern not in self.screen[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not shown; screen:\n{self.text()}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"exited before {pattern!r}; screen:\n{self.text()}")
                self.screen += data
        return self.screen[start:]

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the terminal turns it into SIGINT, as for a person

    def text(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen.decode("utf-8", "replace"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        os.close(self.master)


@pytest.fixture
def chat_terminal(emulator_factory, adb_key, synthetic_bundle, tmp_path):
    from qwenchat.device.direct import DirectDevice

    # Scale 0.1: the long reply lasts seconds, so Ctrl-C lands mid-reply even on a busy host.
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.1, jitter=False)
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        _push_bundle(dev, synthetic_bundle)
    env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm")
    term = Terminal(["run", "--connect", emu.address, "--transport", "direct"], env)
    yield term, emu
    term.close()


def test_interactive_chat_turns_settings_ctrl_c_and_exit(chat_terminal):
    term, emu = chat_terminal
    term.read_until(PROMPT)

    term.type("Hello there, 你好 😀")
    out = term.read_until(PROMPT)
    assert "you said \"Hello there, 你好 😀\"".encode() in out  # whole multi-byte text
    assert b"genie: ttft" in out and b"host: first token" in out and b"SIMULATED" in out
    assert b"rebuild" in out  # the first turn prefills the whole template

    term.type("/set temp=0.2 top_k=5")
    assert b"no rebuild" in term.read_until(PROMPT)

    term.type("and a second turn")
    out = term.read_until(PROMPT)
    assert b"you said \"and a second turn\"" in out
    assert b"followup" in out  # sampler settings did not force a rebuild

    term.type("/set max_tokens=600")
    term.read_until(PROMPT)
    term.type("Write a long essay about phones, 600 tokens")
    term.read_until(b"you said")
    from qwenchat.device.direct import DirectDevice

    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        assert dev.shell("pidof genie-t2t-run").text.split()  # the reply is being generated
    term.ctrl_c()
    out = term.read_until(PROMPT)
    assert b"cut" in out
    # Ctrl-C stopped generation on the phone, not only on the screen.
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        pidof = dev.shell("pidof genie-t2t-run")
    assert pidof.exit_code == 1 and pidof.text.strip() == ""  # pidof: 1 = no such process

    term.type("after the cut")
    out = term.read_until(PROMPT)
    assert b"you said \"after the cut\"" in out
    assert b"rebuild" in out  # a killed process saved no state: rebuilt from the transcript

    term.type("/exit")
    assert term.proc.wait(20) == 0
