"""genie-t2t-run stdout parsing: hand-written streams in the real format, and properties
that must hold for any chunking of the bytes."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwenchat.genie.stream import (
    Abort,
    Banner,
    Begin,
    ContextOverflow,
    End,
    GenieStreamParser,
    Kpis,
    OtherLine,
    PidLine,
    PromptEcho,
    ReplyText,
    parse_all,
)


def genie_stdout(prompt: str, reply: str, *, pid: int | None = 4242, tail: str = "") -> bytes:
    """What genie-t2t-run writes (QAIRT 2.40 main.cpp): pid line, banner + blank line,
    prompt echo + endl + endl, then [BEGIN]: tokens [END] endl."""
    head = f"genie-t2t-run pid: {pid}\n" if pid is not None else ""
    return (
        f"{head}Using libGenie.so version 1.14.0\n\n[PROMPT]: {prompt}\n\n"
        f"[BEGIN]: {reply}[END]\n{tail}"
    ).encode()


def feed_chunks(data: bytes, cuts: list[int], prompt: str | None) -> list:
    parser = GenieStreamParser(prompt)
    events = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    return events + parser.finish()


def reply_text(events) -> str:
    return "".join(e.text for e in events if isinstance(e, ReplyText))


def non_text(events) -> list:
    return [e for e in events if not isinstance(e, ReplyText)]


# ------------------------------------------------------------------ hand-written streams


def test_plain_run():
    chatml = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    run = parse_all(genie_stdout(chatml, "Hello! How can I help?"), chatml)
    assert run.text == "Hello! How can I help?"
    assert run.ended and not run.overflow and not run.aborted
    assert run.pid == 4242
    assert run.version == "1.14.0"
    assert non_text(run.events) == [
        PidLine(4242),
        Banner("1.14.0"),
        PromptEcho(chatml),
        Begin(),
        End(),
    ]


def test_prompt_containing_markers_is_skipped_by_length():
    prompt = "tell me about [BEGIN]: and\n\n[END]\nplease [KPIS]:\n"
    run = parse_all(genie_stdout(prompt, "Sure."), prompt)
    assert run.text == "Sure."
    assert PromptEcho(prompt) in run.events


def test_reply_containing_end_marker_is_not_cut():
    reply = "Genie prints [END]\nwhen done, and [BEGIN]: first. [END] too."
    run = parse_all(genie_stdout("q", reply), "q")
    assert run.text == reply
    assert run.ended


def test_reply_ending_with_end_lookalike():
    reply = "the marker is [END]\n"
    run = parse_all(genie_stdout("q", reply), "q")
    assert run.text == reply
    assert run.ended


def test_no_end_when_output_stops_mid_reply():
    data = b"Using libGenie.so version 1.14.0\n\n[PROMPT]: q\n\n[BEGIN]: half a repl"
    run = parse_all(data, "q")
    assert run.text == "half a repl"
    assert not run.ended


def test_multibyte_characters_never_split():
    data = genie_stdout("q", "你好😀é")
    parser = GenieStreamParser("q")
    texts = []
    for i in range(len(data)):
        texts += [e.text for e in parser.feed(data[i : i + 1]) if isinstance(e, ReplyText)]
    texts += [e.text for e in parser.finish() if isinstance(e, ReplyText)]
    assert "".join(texts) == "你好😀é"
    assert all("\ufffd" not in t for t in texts)


def test_text_is_emitted_before_the_end_is_known():
    parser = GenieStreamParser("q")
    parser.feed(b"Using libGenie.so version 1.14.0\n\n[PROMPT]: q\n\n[BEGIN]: ")
    assert parser.feed(b"Hello") == [ReplyText("Hello")]
    # A possible marker is held back until what follows it is known ...
    assert parser.feed(b" [EN") == [ReplyText(" ")]
    assert parser.feed(b"D]\n") == []
    # ... here more reply text: it was reply text after all.
    assert parser.feed(b"x") == [ReplyText("[END]\nx")]
    assert parser.feed(b"[END]\n") == []
    assert parser.finish() == [End()]


def test_tokens_mode_echo_and_token_reply():
    data = b"genie-t2t-run pid: 7\nUsing libGenie.so version 1.14.0\n\n[PROMPT TOKENS]: 151644 872 198 \n[BEGIN]: 9707 0 [END]\n\n"
    run = parse_all(data, None)
    assert PromptEcho("151644 872 198 ") in run.events
    assert run.text == "9707 0 "
    assert run.ended and run.pid == 7


def test_unknown_prompt_skips_to_end_of_line():
    run = parse_all(genie_stdout("one line", "ok"), None)
    assert run.text == "ok"
    assert PromptEcho("one line") in run.events


def test_pre_235_kpis_block():
    data = genie_stdout("q", "abc") + (
        b"\n[KPIS]:\nInit Time: 6549034 us\n"
        b"Prompt Processing Time: 196067 us, Prompt Processing Rate : 86.707710 toks/sec\n"
        b"Token Generation Time: 740568 us, Token Generation Rate: 12.152884 toks/sec\n"
    )
    run = parse_all(data, "q")
    assert run.text == "abc"
    assert run.kpis == Kpis(6549034, 196067, 86.70771, 740568, 12.152884)


@pytest.mark.parametrize(
    "report",
    [
        "Context Size was exceeded.",
        "Context Size was exhausted",
        "Context limit exceeded (4000 + 200 > 4096)",
    ],
)
def test_context_overflow_after_end(report):
    run = parse_all(genie_stdout("q", "partial", tail=report + "\n"), "q")
    assert run.text == "partial"
    assert run.ended and run.overflow
    assert run.overflow_message == report


def test_overflow_before_begin():
    data = (
        b"Using libGenie.so version 1.14.0\n\n[PROMPT]: q\n\n"
        b"Context limit exceeded (5000 + 0 > 4096)\n[END]\nContext Size was exceeded.\n"
    )
    run = parse_all(data, "q")
    assert run.text == ""
    assert run.overflow and run.ended
    assert Begin() not in run.events


def test_abort_then_status_line():
    data = b"[PROMPT]: q\n\n[BEGIN]: some tok[ABORT]: Query successfully aborted\n"
    run = parse_all(data, "q")
    assert run.text == "some tok"
    assert run.aborted and not run.ended
    assert Abort() in run.events
    assert OtherLine("Query successfully aborted") in run.events


def test_error_lines_before_reply():
    data = b"Using libGenie.so version 1.14.0\n\nFailed to create the dialog config.\n"
    run = parse_all(data, "q")
    assert run.events == [Banner("1.14.0"), OtherLine("Failed to create the dialog config.")]
    assert not run.ended


def test_feed_after_finish_is_refused():
    parser = GenieStreamParser("q")
    parser.finish()
    with pytest.raises(RuntimeError):
        parser.feed(b"x")


# ---------------------------------------------------------------------------- properties

_PIECES = st.sampled_from(
    [
        "[END]",
        "[END]\n",
        "[BEGIN]: ",
        "[PROMPT]: ",
        "[ABORT]",
        "[EN",
        "D]",
        "\n",
        "\n\n",
        " ",
        "你好",
        "😀",
        "é",
        "ok",
        "<|im_end|>",
    ]
)
_TEXT = st.lists(
    st.one_of(_PIECES, st.text(alphabet=st.characters(codec="utf-8"), max_size=6)), max_size=12
).map("".join)
_TRAILER_STARTS = ("[KPIS]:", "Context ", "Query Succ", "Query succ")


def _unambiguous(reply: str) -> bool:
    """Genie escapes nothing: a reply whose "[END]\\n" is followed only by blank space or by
    what Genie writes after a reply is indistinguishable from a real end (documented)."""
    for mark in ("[END]\n", "[ABORT]: "):
        start = 0
        while (i := reply.find(mark, start)) >= 0:
            rest = reply[i + len(mark) :].lstrip(" \t\r\n")
            if not rest or any(rest.startswith(t[: len(rest)]) for t in _TRAILER_STARTS):
                return False
            start = i + 1
    return True


@settings(max_examples=200, deadline=None)
@given(
    prompt=_TEXT,
    reply=_TEXT,
    pid=st.one_of(st.none(), st.integers(1, 10**6)),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_any_chunking_gives_the_same_run(prompt, reply, pid, cuts):
    assume(_unambiguous(reply))
    data = genie_stdout(prompt, reply, pid=pid)
    whole = parse_all(data, prompt)
    assert whole.text == reply
    assert whole.ended
    assert PromptEcho(prompt) in whole.events
    events = feed_chunks(data, [c for c in cuts if c <= len(data)], prompt)
    assert reply_text(events) == reply
    assert non_text(events) == non_text(whole.events)
    # Text pieces are whole characters: nothing was split into replacement characters.
    assert all("\ufffd" not in e.text for e in events if isinstance(e, ReplyText))


@settings(max_examples=100, deadline=None)
@given(
    reply=_TEXT,
    report=st.sampled_from(["Context Size was exceeded.", "Context Size was exhausted"]),
    cuts=st.lists(st.integers(0, 300), max_size=8),
)
def test_any_chunking_of_an_overflowing_run(reply, report, cuts):
    assume(_unambiguous(reply))
    data = genie_stdout("p", reply, tail=report + "\n")
    events = feed_chunks(data, [c for c in cuts if c <= len(data)], "p")
    assert reply_text(events) == reply
    assert non_text(events)[-2:] == [End(), ContextOverflow(report)]


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_arbitrary_bytes_never_crash_and_chunking_does_not_matter(data, cuts):
    whole = parse_all(b"[PROMPT]: q\n\n[BEGIN]: " + data, "q")
    events = feed_chunks(
        b"[PROMPT]: q\n\n[BEGIN]: " + data, [c + 22 for c in cuts if c <= len(data)], "q"
    )
    assert reply_text(events) == whole.text
    assert non_text(events) == non_text(whole.events)


def test_the_shell_pid_line_before_genie_own_lines():
    """Without --pid the shell prints its pid, then execs genie (genie/command.py)."""
    chatml = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    data = b"qwenchat-genie-pid: 31337\n" + genie_stdout(chatml, "Yes.", pid=None)
    run = parse_all(data, chatml)
    assert run.pid == 31337 and run.text == "Yes." and run.ended
    assert non_text(run.events)[0] == PidLine(31337, "shell")
