"""Ctrl-C during a long reply, judged on the phone and against the reply left uncut.

The emulated phone decodes slowly (its device profile says so), the reply is long (the prompt
asks for 400 tokens, max tokens is higher), and the expectation comes from outside the code
under test: the same prompt run to completion first gives the natural reply (the simulated
Genie's text depends only on the prompt and the sampler settings, not on timing), and the
phone's own process table (``ps -A -o PID,NAME``) says whether Genie still runs.

Each test fails for the bug it names: Ctrl-C that only stops printing while Genie goes on
(the process table still lists genie-t2t-run, or the phone logs Genie's command as finished
normally); Ctrl-C that waits for the reply to end (the printed reply is the whole natural
one); a chat that exits, or hangs, instead of coming back to its prompt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from qwenchat.emulator.commandlog import read_records

ASK = "Write about phones, 400 tokens"  # the simulated Genie answers with 400 tokens
MAX_TOKENS = "1000"
# Slow decode from the device profile, at time scale 1: 400 tokens take ~16 s on the phone,
# Ctrl-C lands within the first second or two of text.
PROFILE = {"init_ms": 200, "prefill_chunk_ms": 20, "decode_tok_s": 25}
BOUND_S = 30  # generous: this checks that Ctrl-C comes back, not how fast


def genie_on_phone(dev) -> list[str]:
    """PIDs of genie-t2t-run in the phone's process table."""
    table = dev.shell("ps -A -o PID,NAME").text.splitlines()
    assert table and table[0].split() == ["PID", "NAME"], table  # a real process table
    return [line.split()[0] for line in table[1:] if line.split()[1:] == ["genie-t2t-run"]]


def genie_commands(emu) -> list[dict]:
    """The phone's log of every genie-t2t-run command: {what, exit_code, seconds}."""
    records = read_records(emu.root)
    ends = {r["id"]: r for r in records if r["kind"] == "end"}
    return [
        {"what": r["what"], **{k: ends.get(r["id"], {}).get(k) for k in ("exit_code", "seconds")}}
        for r in records
        if r["kind"] == "shell" and "genie-t2t-run" in r["what"]
    ]


class Run:
    """``qwenchat run ...`` in a subprocess; stdout and stderr collected as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenchat", "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out, self.err = bytearray(), bytearray()
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(pipe, into: bytearray) -> None:  # noqa: ANN001
        for chunk in iter(lambda: pipe.read1(4096), b""):
            into.extend(chunk)

    def wait_for_text(self, chars: int, timeout: float = 180) -> None:  # a busy host: generous
        deadline = time.monotonic() + timeout
        while len(self.out) < chars:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no reply streaming; stderr:\n{self.err.decode()}")
            time.sleep(0.01)

    def finish(self, timeout: float) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code, self.out.decode("utf-8"), self.err.decode("utf-8")


@pytest.fixture
def slow_phone(bundled_phone):
    return bundled_phone(profile=PROFILE, time_scale=1.0)


def _run_args(emu) -> list[str]:
    return ["--connect", emu.address, "--transport", "direct", "--max-tokens", MAX_TOKENS, ASK]


def _natural_reply(emu) -> tuple[str, float]:
    """The same prompt run to completion on the same phone: (reply, seconds on the phone)."""
    code, out, err = Run(*_run_args(emu)).finish(timeout=120)
    assert code == 0, err
    finished = genie_commands(emu)[-1]
    assert finished["exit_code"] == 0
    return out.removesuffix("\n"), finished["seconds"]


def test_ctrl_c_in_a_one_shot_run_kills_genie_on_the_phone_and_cuts_the_reply(slow_phone):
    emu, dev = slow_phone
    natural, natural_s = _natural_reply(emu)
    assert len(natural) > 1000 and natural_s > 8  # long and slow enough to cut into

    run = Run(*_run_args(emu))
    run.wait_for_text(40)
    assert len(genie_on_phone(dev)) == 1  # generating now
    pressed = time.monotonic()
    os.kill(run.proc.pid, signal.SIGINT)
    code, out, err = run.finish(timeout=BOUND_S + 30)
    took = time.monotonic() - pressed
    assert code == 130, err
    assert took < BOUND_S, f"Ctrl-C took {took:.1f} s to come back"
    assert "Traceback" not in err
    assert genie_on_phone(dev) == []  # the phone's process is gone, not orphaned
    # The phone ran Genie for less than the natural reply takes and did not end it normally.
    cut = genie_commands(emu)[-1]
    assert cut["exit_code"] != 0 and cut["seconds"] < natural_s, cut
    # What was printed is the start of the natural reply, cut well before its end.
    printed = out.removesuffix("\n")
    assert printed and natural.startswith(printed)
    assert len(printed) < len(natural) // 2


PROMPT = b">>> "


@pytest.fixture
def chat_terminal(slow_phone):
    from test_chat_interactive import Terminal

    emu, dev = slow_phone
    env = dict(os.environ, COLUMNS="200", LINES="40", TERM="xterm", LC_ALL="C.UTF-8")
    # The per-turn engine's Ctrl-C (its genie-t2t-run must go); a live session's Ctrl-C keeps
    # genie-app and aborts the query: tests/test_session_chat.py.
    term = Terminal(
        ["run", "--connect", emu.address, "--transport", "direct", "--engine", "process"], env
    )
    yield term, emu, dev
    term.close()


def _stored_reply() -> dict:
    from qwenchat.chat.storage import ChatStorage
    from qwenchat.store import open_store

    with open_store() as store:
        chats = ChatStorage(store)
        return chats.conversation(chats.resolve_id("last"))["messages"][-1]


def test_ctrl_c_during_a_long_chat_reply_is_back_at_the_prompt_with_genie_gone(
    slow_phone, chat_terminal
):
    emu, dev = slow_phone
    natural, natural_s = _natural_reply(emu)
    term, _, _ = chat_terminal
    term.read_until(PROMPT)
    term.type(f"/set max_tokens={MAX_TOKENS}")
    term.read_until(PROMPT)
    term.type(ASK)
    term.read_until(b"you said")  # the reply is streaming
    assert len(genie_on_phone(dev)) == 1
    pressed = time.monotonic()
    term.ctrl_c()
    shown = term.read_until(PROMPT, timeout=BOUND_S)  # back at the prompt, still in the chat
    took = time.monotonic() - pressed
    assert took < BOUND_S and term.proc.poll() is None
    assert b"cut" in shown
    assert genie_on_phone(dev) == []
    cut = genie_commands(emu)[-1]
    assert cut["exit_code"] != 0 and cut["seconds"] < natural_s, cut
    reply = _stored_reply()
    assert reply["stop_reason"] == "cut"
    # The chat's first turn is the same prompt as the one-shot run: its natural reply is the
    # same text, and the stored (cut) reply is its start, well short of its end.
    assert reply["content"] and natural.startswith(reply["content"]), (reply, natural[:200])
    assert len(reply["content"]) < len(natural) // 2

    term.type("/exit")  # the chat goes on after the cut and ends normally
    assert term.proc.wait(20) == 0
