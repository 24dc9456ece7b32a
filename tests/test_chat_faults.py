"""Faults during a reply, end to end: `qwenchat run` as a real subprocess (real signals, real
exit codes) against the emulated phone (real ADB sockets, the simulated genie-t2t-run), the
store read back from its SQLite file. Nothing printed is lost; nothing hangs; nothing is left
running or stored on the phone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from qwenchat.emulator.config import Faults
from qwenchat.layout import PhoneLayout
from qwenchat.shellwords import quote

LONG = "Write a long essay about phones, 600 tokens"


class Run:
    """`qwenchat run ...` in a subprocess; its stdout and stderr collected as they come."""

    def __init__(self, *args: str, stdin: bytes | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenchat", "run", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = bytearray()
        self.err = bytearray()
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        if stdin is not None:
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()

    @staticmethod
    def _drain(pipe, into: bytearray) -> None:
        for chunk in iter(lambda: pipe.read1(4096), b""):
            into.extend(chunk)

    def wait_for_reply_text(self, chars: int = 80, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.out) < chars:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no reply streaming; stderr:\n{self.err.decode()}")
            time.sleep(0.02)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code, self.out.decode("utf-8"), self.err.decode("utf-8")


@pytest.fixture
def phone(bundled_phone):
    def make(**overrides):
        overrides.setdefault("time_scale", 0.2)  # a long reply lasts seconds
        return bundled_phone(**overrides)

    return make


def _last_conversation() -> dict:
    from qwenchat.chat.storage import ChatStorage
    from qwenchat.store import open_store

    with open_store() as store:
        chats = ChatStorage(store)
        return chats.conversation(chats.resolve_id("last"))


_NATURAL: dict[str, str] = {}


@pytest.fixture
def natural_long_reply(bundled_phone) -> str:
    """LONG's reply run to completion (the simulated Genie's text depends on the prompt and
    the sampler, not on timing): computed once, on a fast phone of its own."""
    if "long" not in _NATURAL:
        emu, _ = bundled_phone(time_scale=0.005)
        run = Run("--connect", emu.address, "--transport", "direct", "--max-tokens", "600", LONG)
        code, out, err = run.finish(timeout=120)
        assert code == 0, err
        _NATURAL["long"] = _printed_reply(out)
    return _NATURAL["long"]


def _genie_in_process_table(dev) -> list[str]:
    """PIDs of genie-t2t-run in the phone's own process table."""
    table = dev.shell("ps -A -o PID,NAME").text.splitlines()
    assert table and table[0].split() == ["PID", "NAME"], table
    return [line.split()[0] for line in table[1:] if line.split()[1:] == ["genie-t2t-run"]]


def _assert_cut_short(emu, printed: str, natural: str) -> None:
    """The reply stopped early: the start of the natural reply, not all of it; and on the
    phone, Genie's command ended by a signal (its shell's exit code), not by finishing."""
    assert printed and natural.startswith(printed), (printed[:80], natural[:80])
    assert len(printed) < len(natural), "the reply ran to its natural end"
    from qwenchat.emulator.commandlog import read_records

    records = read_records(emu.root)
    ends = {r["id"]: r.get("exit_code") for r in records if r["kind"] == "end"}
    genie = [r["id"] for r in records if r["kind"] == "shell" and "genie-t2t-run" in r["what"]]
    assert genie and ends.get(genie[-1]) not in (None, 0), "Genie ran to its end on the phone"


def _phone_leftovers(dev) -> tuple[list[str], list[str], list[str]]:
    """(genie pids in the phone's process table, files in states/, files in tmp/)."""
    layout = PhoneLayout()
    pids = _genie_in_process_table(dev)
    states = dev.shell(f"ls {quote(layout.states_dir)} 2>/dev/null").text.split()
    tmp = dev.shell(f"ls {quote(layout.tmp_dir)} 2>/dev/null").text.split()
    return pids, states, tmp


def _printed_reply(stdout: str) -> str:
    """The reply as the user saw it: one-shot stdout is the reply and a final newline."""
    assert stdout.endswith("\n")
    return stdout[:-1]


def test_phone_lost_mid_reply_keeps_everything_printed(phone):
    emu, _ = phone()
    run = Run("--connect", emu.address, "--transport", "direct", "--max-tokens", "600", LONG)
    run.wait_for_reply_text()
    emu.stop()  # the phone vanishes mid-reply: sockets closed, its processes killed
    code, out, err = run.finish()
    assert code == 75, err  # EX_TEMPFAIL: try again when the phone is back
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the connection" in errors[0], err
    assert "Traceback" not in err
    assert "stop: device lost" in err  # the figures line says how the reply ended
    conversation = _last_conversation()
    reply = conversation["messages"][-1]
    # Everything printed is stored (not only what a periodic flush had written).
    assert reply["content"] == _printed_reply(out) and len(reply["content"]) >= 80
    assert reply["stop_reason"] == "device_lost"
    assert [g["stop_reason"] for g in reply["generations"]] == ["device_lost"]
    assert reply["generations"][0]["error"]


def test_history_shows_a_lost_reply_as_lost(phone, capsys):
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    emu, _ = phone()
    run = Run("--connect", emu.address, "--transport", "direct", "--max-tokens", "600", LONG)
    run.wait_for_reply_text()
    emu.stop()
    assert run.finish()[0] == 75
    assert run_app(app, ["history", "last"]) == 0
    shown = capsys.readouterr().out
    assert "(device lost: partial)" in shown
    assert "stop: device lost" in shown


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_reply_stops_the_phone_stores_the_reply_and_exits(
    phone, natural_long_reply, signum, code
):
    emu, dev = phone()
    run = Run("--connect", emu.address, "--transport", "direct", "--max-tokens", "600", LONG)
    run.wait_for_reply_text()
    assert len(_genie_in_process_table(dev)) == 1  # generating when the signal comes
    started = time.monotonic()
    run.proc.send_signal(signum)
    exit_code, out, err = run.finish(timeout=30)
    assert exit_code == code, err
    # Generous: that it was stopped, not waited out, is judged below against the natural
    # reply and the phone's log, not by the host clock.
    assert time.monotonic() - started < 60
    assert "Traceback" not in err
    reply = _last_conversation()["messages"][-1]
    assert reply["stop_reason"] == "cut"
    assert reply["content"] == _printed_reply(out) and reply["content"]
    assert reply["generations"][0]["stop_reason"] == "cut"
    _assert_cut_short(emu, reply["content"], natural_long_reply)
    pids, states, tmp = _phone_leftovers(dev)
    assert pids == []  # the phone's process was stopped, not orphaned
    assert states == [] and tmp == []  # a one-shot run leaves nothing behind


def test_a_hung_genie_times_out_with_its_own_exit_code(phone):
    emu, dev = phone(time_scale=0.02, faults=Faults(hang_before_first_token=True))
    run = Run("--connect", emu.address, "--transport", "direct", "--load-timeout", "1", "hi")
    code, out, err = run.finish(timeout=60)
    assert code == 124, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no reply within 1 s" in errors[0], err
    assert "--load-timeout" in err  # the hint names the knob
    reply = _last_conversation()["messages"][-1]
    assert reply["stop_reason"] == "timed_out"
    assert reply["generations"][0]["stop_reason"] == "timed_out"
    assert _phone_leftovers(dev) == ([], [], [])


def test_one_shot_run_leaves_no_state_on_the_phone(phone):
    emu, dev = phone(time_scale=0.02)
    code, out, err = Run("--connect", emu.address, "--transport", "direct", "hello").finish()
    assert code == 0, err
    assert 'you said "hello"' in out
    assert _phone_leftovers(dev) == ([], [], [])


@pytest.mark.parametrize(
    ("stdin", "fragment"),
    [
        (b"caf\xe9 au lait", "stdin is not valid UTF-8 (byte 0xe9 at offset 3)"),
        (b"tab\x00le", "the question contains a NUL byte (character 4)"),
        (b"  \n", "nothing on stdin to ask"),
    ],
)
def test_bad_stdin_is_one_line_before_the_phone_is_used(emulator, stdin, fragment):
    run = Run("--connect", emulator.address, "--transport", "direct", stdin=stdin)
    code, out, err = run.finish()
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0] == f"error: {fragment}", err
    assert len(lines) <= 2 and "Traceback" not in err  # the error, and a hint at most


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--max-tokens", "99999"], "max_tokens must be between 1 and 4096"),
        (["--max-tokens", "0"], "max_tokens must be between 1 and 4096"),
        (["--temp", "-1"], "temp must be between 0 and 5"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--top-k", "0"], "top_k must be at least 1"),
        (["--seed", "-3"], "seed must be between 0 and 2^32-1"),
        (["--load-timeout", "0"], "--load-timeout must be a number of seconds above 0"),
        (["--stall-timeout", "nan"], "--stall-timeout must be a number of seconds above 0"),
        (["--stall-timeout", "1e9"], "--stall-timeout must be a number of seconds above 0"),
        (["--model", "gpt-9"], "unknown model 'gpt-9'"),
    ],
)
def test_out_of_range_chat_options_are_usage_errors(emulator, args, fragment, capsys):
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    code = run_app(app, ["run", "--connect", emulator.address, *args, "hi"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {fragment}"), err
    assert "Traceback" not in err


def test_max_tokens_beyond_the_phones_context_is_refused_with_it(phone, capsys):
    """The phone's config decides the context: 4096 for the synthetic Qwen2 bundle."""
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    emu, _ = phone(time_scale=0.02)
    code = run_app(app, ["run", "--connect", emu.address, "--max-tokens", "4097", "hi"])
    assert code == 2
    assert "max_tokens must be between 1 and 4096" in capsys.readouterr().err


def test_stall_bound_ends_a_reply_that_stops_flowing(phone):
    # One token every 2 s (decode 0.5 tok/s at scale 1): a stall bound of 0.5 s trips after
    # the first token; what was printed is kept with stop reason "timed_out".
    emu, dev = phone(
        time_scale=1.0, profile={"init_ms": 50, "prefill_chunk_ms": 5, "decode_tok_s": 0.5}
    )
    run = Run("--connect", emu.address, "--transport", "direct", "--stall-timeout", "0.5", "hi")
    code, out, err = run.finish(timeout=60)
    assert code == 124, err
    assert "stopped producing tokens for 0 s" in err or "stopped producing tokens" in err
    reply = _last_conversation()["messages"][-1]
    assert reply["stop_reason"] == "timed_out"
    assert reply["content"] == _printed_reply(out)
    assert _phone_leftovers(dev)[0] == []


def test_ctrl_c_one_shot_exits_130_with_the_reply_stored(phone, natural_long_reply):
    emu, dev = phone()
    run = Run("--connect", emu.address, "--transport", "direct", "--max-tokens", "600", LONG)
    run.wait_for_reply_text()
    assert len(_genie_in_process_table(dev)) == 1
    os.kill(run.proc.pid, signal.SIGINT)
    code, out, err = run.finish(timeout=30)
    assert code == 130, err
    reply = _last_conversation()["messages"][-1]
    assert reply["stop_reason"] == "cut" and reply["content"] == _printed_reply(out)
    _assert_cut_short(emu, reply["content"], natural_long_reply)
    assert _phone_leftovers(dev)[0] == []


def test_run_model_must_be_the_phones_and_conversations_record_it(phone, monkeypatch, capsys):
    import dataclasses
    import json

    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app
    from qwenchat.models import registry

    other = dataclasses.replace(
        registry.MODELS[0], name="llama-v2-7b-chat", display_name="Llama-v2-7B-Chat", aliases=()
    )
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS, other))
    emu, dev = phone(time_scale=0.02)
    code = run_app(app, ["run", "--connect", emu.address, "--model", "llama-v2-7b-chat", "hi"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert err.startswith("error: the phone holds Qwen2-7B-Instruct, not Llama-v2-7B-Chat")
    assert _phone_leftovers(dev) == ([], [], [])  # refused before anything ran
    code = run_app(app, ["run", "--connect", emu.address, "--model", "qwen2", "--json", "hi"])
    assert code == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == "qwen2-7b-instruct"
    assert run_app(app, ["history", "last"]) == 0
    assert "qwen2-7b-instruct on qwenchat emulator" in capsys.readouterr().out
    assert _last_conversation()["model"] == "qwen2-7b-instruct"
