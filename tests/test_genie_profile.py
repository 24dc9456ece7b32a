"""Genie --profile JSON: read by event type and checked units (the Llama example from
a real 8 Elite run, as documented in genie.md)."""

from __future__ import annotations

import copy
import json

import pytest

from qwenchat.errors import GenieError
from qwenchat.genie.profile import parse_profile

LLAMA = {
    "header": {
        "header_version": {"major": 0, "minor": 1, "patch": 0},
        "version": {"major": 0, "minor": 1, "patch": 0},
        "artifact_type": "GENIE_PROFILE",
    },
    "metadata": {"timestamp": 391862341312},
    "components": [
        {
            "name": "dialog0",
            "type": "dialog",
            "events": [
                {
                    "type": "GenieDialog_create",
                    "duration": 1124864,
                    "start": 391862341614,
                    "stop": 391863466478,
                    "init-time": {"value": 1124713, "unit": "us"},
                },
                {
                    "type": "GenieDialog_query",
                    "duration": 5726945,
                    "start": 391863466531,
                    "stop": 391869193476,
                    "num-prompt-tokens": {"value": 823, "unit": ""},
                    "prompt-processing-rate": {"value": 1547.98, "unit": "toks/sec"},
                    "time-to-first-token": {"value": 531665, "unit": "us"},
                    "num-generated-tokens": {"value": 200, "unit": ""},
                    "token-generation-rate": {"value": 38.525, "unit": "toks/sec"},
                    "token-generation-time": {"value": 5191579, "unit": "us"},
                },
                {
                    "type": "GenieDialog_free",
                    "duration": 32347,
                    "start": 391869193478,
                    "stop": 391869225825,
                },
            ],
        }
    ],
}


def test_llama_example():
    p = parse_profile(json.dumps(LLAMA))
    assert p.init_time_us == 1124713
    assert p.num_prompt_tokens == 823
    assert p.prompt_processing_rate == pytest.approx(1547.98)
    assert p.time_to_first_token_us == 531665
    assert p.num_generated_tokens == 200
    assert p.token_generation_rate == pytest.approx(38.525)
    assert p.token_generation_time_us == 5191579
    assert p.query_duration_us == 5726945
    assert p.ttft_ms == pytest.approx(531.665)
    assert p.init_ms == pytest.approx(1124.713)
    # The documented relations hold for this real run (to the profiler's rounding).
    assert p.num_prompt_tokens / p.prompt_processing_rate == pytest.approx(p.ttft_s, rel=1e-3)
    assert p.num_generated_tokens / (p.token_generation_time_us / 1e6) == pytest.approx(
        p.token_generation_rate, rel=1e-3
    )


def test_events_found_by_type_not_position():
    doc = copy.deepcopy(LLAMA)
    doc["components"][0]["events"].reverse()
    doc["components"].insert(
        0,
        {
            "name": "engine0",
            "type": "engine",
            "events": [
                {
                    "type": "GenieEngine_create",
                    "duration": 5,
                    "init-time": {"value": 1, "unit": "us"},
                }
            ],
        },
    )
    assert parse_profile(json.dumps(doc).encode()) == parse_profile(json.dumps(LLAMA))


def test_missing_create_event_leaves_init_unknown():
    doc = copy.deepcopy(LLAMA)
    del doc["components"][0]["events"][0]
    p = parse_profile(json.dumps(doc))
    assert p.init_time_us is None and p.init_ms is None
    assert p.num_generated_tokens == 200


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        json.dumps({"components": []}),
        json.dumps({"header": {}}),
    ],
)
def test_bad_profiles_raise_genie_error(text):
    with pytest.raises(GenieError):
        parse_profile(text)


def test_wrong_unit_is_refused():
    doc = copy.deepcopy(LLAMA)
    doc["components"][0]["events"][1]["time-to-first-token"] = {"value": 531.665, "unit": "ms"}
    with pytest.raises(GenieError, match="time-to-first-token.*'ms'"):
        parse_profile(json.dumps(doc))


def test_missing_value_is_refused():
    doc = copy.deepcopy(LLAMA)
    del doc["components"][0]["events"][1]["num-generated-tokens"]
    with pytest.raises(GenieError, match="num-generated-tokens"):
        parse_profile(json.dumps(doc))
