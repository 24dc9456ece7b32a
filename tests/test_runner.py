"""The runner on the emulated phone: one query, its record, its bounds and its one stop.

Expected values are written by hand or read from the phone itself (pidof, ls), never from
the runner under test.
"""

from __future__ import annotations

import threading
import time

import pytest

from qwenchat.emulator.config import Faults
from qwenchat.layout import PhoneLayout
from qwenchat.runner import open_engine
from qwenchat.runner.record import Outcome
from qwenchat.runner.request import QueryRequest, SamplerSettings, WaitBounds

CHATML = "<|im_start|>user\nTell me about phones.<|im_end|>\n<|im_start|>assistant\n"


def _pids(device) -> list[str]:
    return device.shell("pidof genie-t2t-run").text.split()


def _leftovers(device) -> list[str]:
    layout = PhoneLayout()
    out = device.shell(f"ls {layout.tmp_dir} {layout.states_dir} 2>/dev/null").text
    return [line for line in out.split() if line and not line.endswith(":")]


def test_a_finished_query_and_its_record(bundled_phone):
    _, dev = bundled_phone()
    engine = open_engine(dev)
    seen: list[str] = []
    record = engine.query(QueryRequest(CHATML, SamplerSettings(max_tokens=12)), seen.append)
    assert record.outcome is Outcome.FINISHED and record.ok
    assert record.exit_code == 0 and record.pid is not None
    assert record.text == "".join(seen) and record.text
    assert record.profile is not None and record.profile.num_generated_tokens <= 12
    assert record.profile_json["header"]["artifact_type"] == "GENIE_PROFILE"
    times = [e.at for e in record.events]
    assert times == sorted(times)
    assert record.started_at <= record.sent_at <= record.first_token_at <= record.ended_at
    # One-shot: no dialog state, no prompt, profile or config file left on the phone.
    assert _leftovers(dev) == []
    assert _pids(dev) == []


def test_a_dialog_keeps_its_state_until_forgotten(bundled_phone):
    _, dev = bundled_phone()
    engine = open_engine(dev)
    request = QueryRequest(CHATML, SamplerSettings(max_tokens=6), dialog="chat-1")
    assert engine.query(request).ok
    assert engine.has_dialog("chat-1") and not engine.has_dialog("chat-2")
    follow = QueryRequest("\n<|im_start|>user\nMore?<|im_end|>\n<|im_start|>assistant\n",
                          SamplerSettings(max_tokens=6), dialog="chat-1", follow_up=True)
    assert engine.query(follow).ok
    engine.forget("chat-1")
    assert not engine.has_dialog("chat-1")
    assert _leftovers(dev) == []


def test_a_genie_that_never_answers_is_stopped_at_the_first_token_bound(bundled_phone):
    _, dev = bundled_phone(faults=Faults(hang_before_first_token=True))
    engine = open_engine(dev)
    started = time.monotonic()
    record = engine.query(QueryRequest(CHATML, bounds=WaitBounds(first_token=1.5, stall=1.0)))
    took = time.monotonic() - started
    assert record.outcome is Outcome.TIMED_OUT
    assert "no reply within 2 s" in record.error  # 1.5 s, rounded in the message
    assert 1.5 <= took < 15
    assert record.pid is not None and _pids(dev) == []  # stopped, not left hanging
    assert _leftovers(dev) == []


def test_a_stalled_reply_is_stopped_at_the_stall_bound(bundled_phone):
    # Time scale 1, 0.4 tokens/s: 2.5 s between tokens, far beyond a 0.6 s stall bound.
    _, dev = bundled_phone(
        time_scale=1.0,
        profile={"init_ms": 10, "prefill_chunk_ms": 10, "chunk_tokens": 128, "decode_tok_s": 0.4},
    )
    engine = open_engine(dev)
    record = engine.query(
        QueryRequest(CHATML, SamplerSettings(max_tokens=50),
                     bounds=WaitBounds(first_token=30, stall=0.6))
    )
    assert record.outcome is Outcome.TIMED_OUT
    assert "stopped producing tokens for 1 s" in record.error
    assert record.first_token_at is not None and record.text  # what came is kept
    assert _pids(dev) == []


def test_cancel_stops_exactly_our_process_before_the_natural_end(bundled_phone):
    _, dev = bundled_phone(time_scale=0.2)
    engine = open_engine(dev)
    first = threading.Event()

    def on_text(_text: str) -> None:
        first.set()

    threading.Thread(target=lambda: first.wait(30) and engine.cancel(), daemon=True).start()
    record = engine.query(QueryRequest(CHATML, SamplerSettings(max_tokens=400)), on_text)
    assert record.outcome is Outcome.CUT
    assert record.text and not record.ended  # cut: Genie never printed [END]
    assert record.profile is None  # a killed genie writes no profile
    assert _pids(dev) == []
    assert _leftovers(dev) == []


LONG_CHATML = "<|im_start|>user\nWrite about phones, 400 tokens<|im_end|>\n<|im_start|>assistant\n"


def _genie_in_process_table(device) -> list[str]:
    """PIDs of genie-t2t-run in the phone's own process table (toybox ps)."""
    table = device.shell("ps -A -o PID,NAME").text.splitlines()
    assert table and table[0].split() == ["PID", "NAME"], table
    return [line.split()[0] for line in table[1:] if line.split()[1:] == ["genie-t2t-run"]]


def test_cancel_cuts_the_reply_short_of_the_same_query_left_to_finish(bundled_phone):
    """Judged against the same query run to its end first (the simulated Genie's text depends
    on the prompt and the sampler, not on timing) and against the phone's process table, not
    against the record the runner writes: a cancel that only stopped reading, or waited for
    the end, passes "outcome CUT, no pid afterwards" but not this."""
    from qwenchat.device.direct import DirectDevice

    emu, dev = bundled_phone(profile={"init_ms": 100, "decode_tok_s": 60}, time_scale=1.0)
    engine = open_engine(dev)
    request = QueryRequest(LONG_CHATML, SamplerSettings(max_tokens=1000, seed=11))
    whole = engine.query(request)
    assert whole.outcome is Outcome.FINISHED and len(whole.text) > 1000

    first = threading.Event()
    running: list[list[str]] = []

    def cancel_mid_reply() -> None:
        if first.wait(30):
            with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as other:
                running.append(_genie_in_process_table(other))
            engine.cancel()

    threading.Thread(target=cancel_mid_reply, daemon=True).start()
    record = engine.query(request, lambda _text: first.set())
    assert running and len(running[0]) == 1  # Genie was generating when cancel came
    assert record.outcome is Outcome.CUT
    assert record.text and whole.text.startswith(record.text)
    assert len(record.text) < len(whole.text) // 2
    assert _genie_in_process_table(dev) == []
    assert _leftovers(dev) == []


def test_ctrl_c_outside_a_chat_stops_the_phone_process_and_propagates(bundled_phone):
    _, dev = bundled_phone(time_scale=0.2)
    engine = open_engine(dev)

    def interrupt(_text: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.query(QueryRequest(CHATML, SamplerSettings(max_tokens=400)), interrupt)
    assert _pids(dev) == []


def test_losing_the_phone_mid_reply_keeps_what_came(bundled_phone):
    emu, dev = bundled_phone(time_scale=0.2)
    engine = open_engine(dev)
    chunks: list[str] = []

    def on_text(text: str) -> None:
        chunks.append(text)
        if len(chunks) == 3:
            threading.Thread(target=emu.stop, daemon=True).start()

    record = engine.query(QueryRequest(CHATML, SamplerSettings(max_tokens=400)), on_text)
    assert record.outcome is Outcome.DEVICE_LOST
    assert record.text.startswith("".join(chunks[:3]))
    assert "lost the connection" in record.error or "stopped answering" in record.error


def test_bounds_grow_with_the_prompt():
    short, long = WaitBounds.for_prompt(10), WaitBounds.for_prompt(4000)
    assert long.first_token - short.first_token == pytest.approx((4000 - 10) / 50)
    assert WaitBounds.for_prompt(0, load_s=5, stall_s=2) == WaitBounds(first_token=5, stall=2)


def test_files_left_by_a_lost_link_are_removed_at_the_next_connection(bundled_phone):
    _, dev = bundled_phone()
    tmp = PhoneLayout().tmp_dir
    dev.shell(f"mkdir -p {tmp} && cd {tmp} && touch prompt-old.txt profile-old.json "
              "config-old.json prompt-new.txt keep-me.txt && "
              "touch -t 202001010000 prompt-old.txt profile-old.json config-old.json keep-me.txt")
    open_engine(dev)
    left = sorted(dev.shell(f"ls {tmp}").text.split())
    # Old query files go; a fresh one (another chat's) and anything not ours stay.
    assert left == ["keep-me.txt", "prompt-new.txt"]
