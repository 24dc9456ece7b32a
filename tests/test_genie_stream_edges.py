"""genie-t2t-run stdout at its edges, every event checked against a hand-written list: output
that stops inside the prompt echo or inside a header line, and an echo of unknown length."""

from __future__ import annotations

from qwenchat.genie.stream import (
    Banner,
    Begin,
    End,
    GenieStreamParser,
    PromptEcho,
    ReplyText,
    parse_all,
)


def _events(data: bytes, prompt: str | None) -> list:
    parser = GenieStreamParser(prompt)
    return parser.feed(data) + parser.finish()


def test_output_cut_inside_an_echo_of_unknown_length_gives_the_echo_so_far():
    assert _events(b"[PROMPT]: partial li", None) == [PromptEcho("partial li")]


def test_output_cut_inside_an_echo_of_known_length_gives_the_echo_so_far():
    assert _events(b"[PROMPT]: hel", "hello") == [PromptEcho("hel")]


def test_a_last_header_line_without_newline_is_still_a_line_not_reply_text():
    assert _events(b"Using libGenie.so version 1.2.3", None) == [Banner("1.2.3")]


def test_an_echo_of_unknown_length_ends_at_its_newline_and_is_not_read_again():
    run = parse_all(b"[PROMPT]: hi there\n\n[BEGIN]: ok[END]\n", None)
    assert run.events == [PromptEcho("hi there"), Begin(), ReplyText("ok"), End()]
    assert run.text == "ok" and run.ended


def test_reply_is_the_runs_text():
    run = parse_all(b"[PROMPT]: q\n\n[BEGIN]: the answer[END]\n", None)
    assert run.reply == "the answer" == run.text
