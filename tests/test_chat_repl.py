"""REPL input handling and the figures line (no phone needed)."""

from __future__ import annotations

import io

import pytest

from qwenchat.chat.render import ReplyStream, figures_line
from qwenchat.chat.repl import Command, LineReader, parse_command
from qwenchat.chat.session import PromptMode, ReplyFigures, ReplyResult, StopReason
from qwenchat.errors import UsageError


def test_slash_commands_parse():
    assert parse_command("/set temp=0.7") == Command("set", "temp=0.7")
    assert parse_command("  /SYSTEM Be terse. ") == Command("system", "Be terse.")
    assert parse_command("/quit") == Command("exit", "")
    assert parse_command("hello /set") is None
    assert parse_command("//not a command") is None
    with pytest.raises(UsageError, match="unknown command /frobnicate"):
        parse_command("/frobnicate")


def _reader(lines):
    it = iter(lines)

    def fake_input(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return LineReader(fake_input)


def test_triple_quotes_make_one_multiline_message():
    reader = _reader(['"""first', "second", 'third"""', "next"])
    assert reader.read() == "first\nsecond\nthird"
    assert reader.read() == "next"
    assert _reader(['"""one line"""']).read() == "one line"
    with pytest.raises(EOFError):
        _reader([]).read()


def _result(**kw) -> ReplyResult:
    figures = ReplyFigures(
        genie_init_us=3_100_000,
        genie_prompt_tokens=128,
        genie_prefill_rate=750.0,
        genie_ttft_us=171_000,
        genie_generated_tokens=57,
        genie_decode_rate=13.6,
        host_first_token_s=3.4,
        ctx_used=412,
        simulated=True,
    )
    for key, value in kw.items():
        setattr(figures, key, value)
    return ReplyResult("x", StopReason.EOS, PromptMode.FOLLOWUP, figures)


def test_figures_line_names_every_source():
    line = figures_line(_result())
    genie, host, tail, sim = line.split(" │ ")
    assert genie == (
        "genie: ttft 171 ms · prefill 750 tok/s (128 tok) · decode 13.6 tok/s · load 3.1 s"
    )
    assert host == "host: first token 3.4 s"
    assert tail == "57 tok · ctx 412/4096 · stop: eos · followup"
    assert sim == "SIMULATED"


def test_figures_line_without_profile():
    result = _result(genie_ttft_us=None, genie_decode_rate=None, genie_generated_tokens=None,
                     simulated=False)
    result.stop = StopReason.CUT
    line = figures_line(result)
    assert line.startswith("genie: no profile (process stopped)")
    assert "stop: cut" in line and "SIMULATED" not in line


def test_reply_stream_writes_each_piece_at_once_and_leaves_text_when_not_a_tty():
    class Sink(io.StringIO):
        flushes = 0

        def flush(self):
            Sink.flushes += 1

    out = Sink()
    stream = ReplyStream(out)
    stream.write("**bold**")
    assert out.getvalue() == "**bold**" and Sink.flushes == 1
    stream.write(" 你好")
    assert Sink.flushes == 2
    stream.finish()
    assert out.getvalue() == "**bold** 你好\n"  # no Markdown redraw into a pipe
