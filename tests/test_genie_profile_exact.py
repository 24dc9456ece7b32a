"""Reading Genie's --profile JSON: every figure and unit against a hand-written document,
the latest query winning, and each way the document can be unusable."""

from __future__ import annotations

import json

import pytest

from qwenchat.errors import GenieError
from qwenchat.genie.profile import parse_profile


def _query(**over):
    event = {
        "type": "GenieDialog_query",
        "duration": 1_500_000,
        "num-prompt-tokens": {"value": 12, "unit": ""},
        "prompt-processing-rate": {"value": 250.5, "unit": "toks/sec"},
        "time-to-first-token": {"value": 48_000, "unit": "us"},
        "num-generated-tokens": {"value": 30, "unit": ""},
        "token-generation-rate": {"value": 20.25, "unit": "toks/sec"},
        "token-generation-time": {"value": 1_432_000, "unit": "us"},
    }
    event.update(over)
    return event


def _doc(*events, create=True):
    evs = list(events)
    if create:
        evs.insert(0, {"type": "GenieDialog_create", "init-time": {"value": 2_250_000, "unit": "us"}})
    return json.dumps({"components": ["junk", {"events": "none"}, {"events": ["x", *evs]}]})


def test_every_figure_and_derived_unit():
    p = parse_profile(_doc(_query()))
    assert (p.init_time_us, p.num_prompt_tokens, p.num_generated_tokens) == (2_250_000, 12, 30)
    assert (p.prompt_processing_rate, p.token_generation_rate) == (250.5, 20.25)
    assert (p.time_to_first_token_us, p.token_generation_time_us) == (48_000, 1_432_000)
    assert p.query_duration_us == 1_500_000
    assert (p.ttft_ms, p.ttft_s) == (48.0, 0.048)
    assert (p.init_ms, p.init_s) == (2250.0, 2.25)
    assert (p.generation_ms, p.query_ms) == (1432.0, 1500.0)
    assert isinstance(p.num_prompt_tokens, int) and isinstance(p.prompt_processing_rate, float)


def test_the_latest_query_wins():
    second = _query(**{"num-generated-tokens": {"value": 7, "unit": ""}})
    assert parse_profile(_doc(_query(), second).encode()).num_generated_tokens == 7


def test_no_create_event_or_no_init_time_means_no_load_figure():
    p = parse_profile(_doc(_query(), create=False))
    assert (p.init_time_us, p.init_ms, p.init_s) == (None, None, None)
    doc = json.dumps({"components": [{"events": [{"type": "GenieDialog_create"}, _query()]}]})
    assert parse_profile(doc).init_time_us is None


def test_a_duration_that_is_not_a_number_is_left_out():
    p = parse_profile(_doc(_query(duration="1.5s")))
    assert p.query_duration_us is None and p.query_ms is None
    assert parse_profile(_doc(_query(duration=2.0))).query_duration_us == 2


def test_a_whole_float_counts_as_a_count():
    p = parse_profile(_doc(_query(**{"num-prompt-tokens": {"value": 12.0, "unit": ""}})))
    assert p.num_prompt_tokens == 12 and isinstance(p.num_prompt_tokens, int)


@pytest.mark.parametrize(
    "data, message",
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[]", 'no "components" list'),
        ('{"components": {}}', 'no "components" list'),
        (json.dumps({"components": [{"events": [{"type": "GenieDialog_create"}]}]}),
         "no GenieDialog_query event"),
        (_doc(_query(**{"time-to-first-token": {"value": 48, "unit": "ms"}})),
         "time-to-first-token is in 'ms', expected 'us'"),
        (_doc(_query(**{"num-prompt-tokens": {"value": 12.5, "unit": ""}})),
         "num-prompt-tokens is not a whole number: 12.5"),
        (_doc(_query(**{"num-prompt-tokens": {"value": True, "unit": ""}})),
         "num-prompt-tokens is not a number: True"),
        (_doc(_query(**{"token-generation-rate": {"value": "fast", "unit": "toks/sec"}})),
         "token-generation-rate is not a number: 'fast'"),
        (_doc(_query(**{"token-generation-rate": {"unit": "toks/sec"}})),
         "GenieDialog_query has no 'token-generation-rate' value"),
        (_doc(_query(**{"token-generation-rate": 20.25})),
         "GenieDialog_query has no 'token-generation-rate' value"),
        (json.dumps({"components": [{"events": [
            {"type": "GenieDialog_create", "init-time": {"value": 5, "unit": "ms"}}, _query()]}]}),
         "init-time is in 'ms', expected 'us'"),
    ],
)
def test_an_unusable_profile_is_one_clear_error(data, message):
    with pytest.raises(GenieError) as info:
        parse_profile(data)
    assert message in str(info.value)


def test_a_missing_unit_counts_as_no_unit():
    p = parse_profile(_doc(_query(**{"num-generated-tokens": {"value": 3}})))
    assert p.num_generated_tokens == 3
    with pytest.raises(GenieError, match="expected 'toks/sec'"):
        parse_profile(_doc(_query(**{"prompt-processing-rate": {"value": 1.0}})))
