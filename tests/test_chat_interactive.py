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
    env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm", LC_ALL="C.UTF-8")
    # These tests are the per-turn engine's (one genie-t2t-run per turn): the live session's
    # interactive behaviour is tests/test_session_chat.py's.
    term = Terminal(
        ["run", "--connect", emu.address, "--transport", "direct", "--engine", "process"], env
    )
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

    # However the chat ends, its dialog state leaves the phone.
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        layout = PhoneLayout()
        assert dev.shell(f"ls {layout.states_dir}").text.split() == []
        assert dev.shell(f"ls {layout.tmp_dir}").text.split() == []


def _store_messages() -> list[dict]:
    from qwenchat.chat.storage import ChatStorage
    from qwenchat.store import open_store

    with open_store() as store:
        chats = ChatStorage(store)
        return chats.conversation(chats.resolve_id("last"))["messages"]


def test_a_paste_is_one_message(chat_terminal):
    term, _ = chat_terminal
    term.read_until(PROMPT)
    # Three lines arriving at once, as a terminal without bracketed paste delivers a paste.
    os.write(term.master, b"first line\rsecond line\rthird line\r")
    out = term.read_until(PROMPT)
    assert out.count(b"genie: ttft") == 1, term.text()  # one reply (its figures line)
    assert b'you said "first line second line third line"' in out
    # A terminal with bracketed paste wraps it in markers (the chat turns the mode on).
    assert b"\x1b[?2004h" in term.screen
    os.write(term.master, b"\x1b[200~alpha\nbeta\ngamma\n\x1b[201~\r")
    out = term.read_until(PROMPT)
    assert out.count(b"genie: ttft") == 1, term.text()
    assert b'you said "alpha beta gamma"' in out
    term.type("/exit")
    assert term.proc.wait(20) == 0
    users = [m["content"] for m in _store_messages() if m["role"] == "user"]
    assert users == ["first line\nsecond line\nthird line", "alpha\nbeta\ngamma"]


def test_a_question_does_not_swallow_the_next_line(chat_terminal):
    term, _ = chat_terminal
    term.read_until(PROMPT)
    term.type("/set max_tokens=100")
    term.read_until(PROMPT)
    term.type("Write a long story about phones.")  # 300-600 tokens: stops at 100
    term.read_until(b"[Y/n]")  # stopped at max tokens: continue it?
    term.type("what about NPUs?")  # the user went on typing instead of answering
    out = term.read_until(PROMPT)
    assert b"taken as no" in out
    assert b'you said "what about NPUs?"' in out, term.text()
    term.type("/exit")
    assert term.proc.wait(20) == 0


def test_sigterm_mid_reply_stores_it_removes_the_state_and_exits_143(chat_terminal):
    from qwenchat.device.direct import DirectDevice

    term, emu = chat_terminal
    term.read_until(PROMPT)
    term.type("a first turn")
    term.read_until(PROMPT)
    term.type("/set max_tokens=600")
    term.read_until(PROMPT)
    term.type("Write a long essay about phones, 600 tokens")
    term.read_until(b"you said")
    term.proc.send_signal(signal.SIGTERM)
    assert term.proc.wait(30) == 143
    reply = _store_messages()[-1]
    assert reply["stop_reason"] == "cut" and "you said" in reply["content"]
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        layout = PhoneLayout()
        assert dev.shell("pidof genie-t2t-run").text.split() == []
        assert dev.shell(f"ls {layout.states_dir}").text.split() == []  # the chat's state
        assert dev.shell(f"ls {layout.tmp_dir}").text.split() == []


def test_a_chat_whose_phone_vanishes_stays_open_and_reconnects(chat_terminal):
    import dataclasses

    from qwenchat.emulator.server import EmulatorServer

    term, emu = chat_terminal
    term.read_until(PROMPT)
    term.type("/set max_tokens=600")
    term.read_until(PROMPT)
    term.type("Write a long essay about phones, 600 tokens")
    term.read_until(b"you said")
    emu.stop()  # the phone vanishes mid-reply
    out = term.read_until(PROMPT)
    assert b"the phone is gone" in out and b"stop: device lost" in out
    assert term.proc.poll() is None  # the chat stays open
    term.type("are you there?")
    out = term.read_until(PROMPT)
    assert b"still gone" in out
    back = EmulatorServer(dataclasses.replace(emu.config), port=emu.port)  # same serial
    back.start()
    try:
        term.type("hello again")
        out = term.read_until(PROMPT)
        assert b"reconnected" in out, term.text()
        assert b'you said "hello again"' in out and b"rebuild" in out
        term.type("/exit")
        assert term.proc.wait(20) == 0
    finally:
        back.stop()
    messages = _store_messages()
    lost = [m for m in messages if m["role"] == "assistant" and m["stop_reason"] == "device_lost"]
    assert len(lost) == 1 and "you said" in lost[0]["content"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "Write a long essay about phones, 600 tokens",
        "hello again",
    ]
