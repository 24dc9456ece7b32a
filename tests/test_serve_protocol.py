"""A chat completions body checked into a request, and OpenAI's `stop` (no phone, no server).

Failure modes, each tested below:
- a field Genie cannot honour (n > 1, logprobs, tools, images, penalties) accepted and ignored
  instead of refused by name; its default value (n: 1, logprobs: false) refused;
- an unknown field silently ignored;
- wrong types passing (a bool as a number, a string as max_tokens, NaN temperature);
- messages split wrongly (system prompt, history, the new user turn; text parts joined);
- a conversation that does not end on a user message accepted;
- message text the chat would refuse (NUL byte) reaching the session;
- a stop sequence split across streamed pieces missed, or text after it passed on;
  text held back as a possible stop's start lost at the end.
"""

from __future__ import annotations

import json

import pytest

from qwenchat.runner.request import SamplerSettings
from qwenchat.serve.errors import APIError
from qwenchat.serve.phones import StopScanner
from qwenchat.serve.protocol import ChatRequest, Turn, parse_body


def body(**fields) -> bytes:
    base = {"model": "qwen2-7b-instruct", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return json.dumps(base).encode()


def refused(raw: bytes) -> APIError:
    with pytest.raises(APIError) as info:
        parse_body(raw)
    assert info.value.status == 400
    return info.value


def test_a_conversation_is_split_as_the_chat_session_keeps_it():
    raw = body(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": [{"type": "text", "text": "re"},
                                              {"type": "text", "text": "ply"}]},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
        ],
        max_completion_tokens=7, temperature=0.5, top_p=0.9, seed=3, stop=["END"],
        stream=True, stream_options={"include_usage": True}, n=1, logprobs=False, user="u1",
    )
    assert parse_body(raw) == ChatRequest(
        model="qwen2-7b-instruct",
        system="Be brief.",
        history=(Turn("user", "one"), Turn("assistant", "reply")),
        user="two",
        settings=SamplerSettings(temp=0.5, top_p=0.9, seed=3, max_tokens=7),
        stream=True,
        include_usage=True,
        stop=("END",),
    )


def test_developer_is_the_system_message_and_max_tokens_is_read():
    got = parse_body(body(messages=[{"role": "developer", "content": "sys"},
                                    {"role": "user", "content": "q"}], max_tokens=5))
    assert got.system == "sys" and got.user == "q" and got.history == ()
    assert got.settings.max_tokens == 5


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 1}, "frequency_penalty"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"n": True}, "n"),  # a boolean is not the number 1
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_what_genie_cannot_honour_is_refused_by_name(fields, param):
    error = refused(body(**fields))
    assert error.param == param and param in error.message
    assert error.code == "unsupported_parameter"


def test_an_image_part_is_refused_naming_where_it_is():
    raw = body(messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]}])
    error = refused(raw)
    assert error.param == "messages[0].content[1].type"
    assert "'image_url'" in error.message


@pytest.mark.parametrize(
    ("raw", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object, not an array"),
        (b"\xff\xfe", None, "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, None, "JSON"),
        (b'{"seed": ' + b"9" * 5000 + b"}", None, "cannot be read"),
        (body(model=3), "model", "model must be a non-empty string"),
        (body(messages=[]), "messages", "non-empty array"),
        (body(messages="hi"), "messages", "non-empty array"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role", "not 'tool'"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content", "a string or"),
        (body(messages=[{"role": "user", "content": "a", "name": "bob"}]),
         "messages[0].name", "not supported"),
        (body(messages=[{"role": "user", "content": "a\u0000b"}]), "messages[0].content",
         "NUL byte"),
        (body(messages=[{"role": "user", "content": "  "}]), "messages[0].content", "empty"),
        (body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
         "messages[1].role", "last message must be the user's"),
        (body(messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                        {"role": "user", "content": "b"}]), "messages[1].role", "only supported first"),
        (body(max_tokens="12"), "max_tokens", "must be an integer, not a string"),
        (body(max_tokens=True), "max_tokens", "must be an integer, not a boolean"),
        (body(max_tokens=0), "max_tokens", "at least 1"),
        (body(max_tokens=5, max_completion_tokens=6), "max_completion_tokens", "disagree"),
        (body(temperature=2.5), "temperature", "between 0 and 2"),
        (body(temperature="hot"), "temperature", "must be a number"),
        (body(top_p=0), "top_p", "(0, 1]"),
        (body(seed=-1), "seed", "2^32-1"),
        (body(seed=1.5), "seed", "an integer"),
        (body(stop=5), "stop", "a string or an array"),
        (body(stop=["a", "b", "c", "d", "e"]), "stop", "at most 4"),
        (body(stop=[""]), "stop", "must not be empty"),
        (body(stream="yes"), "stream", "a boolean"),
        (body(stream_options={"include_usage": True}), "stream_options", "only allowed"),
    ],
)
def test_a_bad_field_is_one_400_naming_it(raw, param, words):
    error = refused(raw)
    assert error.param == param
    assert words in error.message
    assert error.body()["error"]["type"] == "invalid_request_error"


def test_nan_temperature_is_refused():
    error = refused(b'{"model": "m", "messages": [{"role": "user", "content": "a"}], '
                    b'"temperature": NaN}')
    assert error.param == "temperature" and "finite" in error.message


# ----- stop sequences over streamed pieces


def feed_all(stops, pieces):
    scanner = StopScanner(tuple(stops))
    out = [scanner.feed(p) for p in pieces]
    out.append(scanner.flush())
    return "".join(out), scanner.hit, scanner.text


@pytest.mark.parametrize(
    ("stops", "pieces", "expected", "hit"),
    [
        ((), ["ab", "cd"], "abcd", False),
        (("END",), ["hello E", "N", "D and more"], "hello ", True),
        (("END",), ["hello EN"], "hello EN", False),  # held back, then given at the end
        (("xy", "b"), ["aaxb"], "aax", True),  # the earliest sequence wins
        (("\n\n",), ["line\n", "\nnext"], "line", True),
        (("END",), ["END"], "", True),
    ],
)
def test_stop_sequences_cut_the_reply_even_across_pieces(stops, pieces, expected, hit):
    text, was_hit, kept = feed_all(stops, pieces)
    assert (text, was_hit, kept) == (expected, hit, expected)


def test_nothing_is_passed_on_after_a_stop():
    scanner = StopScanner(("STOP",))
    assert scanner.feed("a STOP b") == "a "
    assert scanner.feed("more text") == ""
    assert scanner.flush() == ""
