"""The --profile JSON as GenieProfile_getJsonData writes it (units: us and toks/sec).

Events are looked up by "type" by readers, never by position; timestamps are microseconds on
the host's monotonic clock. time-to-first-token = num-prompt-tokens / prompt-processing-rate
and token-generation-rate = generated / token-generation-time (decode only), as in Genie.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


def us(seconds: float) -> int:
    return int(round(seconds * 1_000_000))


@dataclass
class Span:
    start: float  # time.monotonic() seconds
    stop: float

    def event(self, kind: str) -> dict:
        return {
            "type": kind,
            "duration": us(self.stop - self.start),
            "start": us(self.start),
            "stop": us(self.stop),
        }


def create_event(create: Span) -> dict:
    """GenieDialog_create: the model load, with its ``init-time``."""
    event = create.event("GenieDialog_create")
    event["init-time"] = {"value": us(create.stop - create.start), "unit": "us"}
    return event


def query_event(
    query: Span, *, n_prompt: int, ttft_s: float, n_generated: int, generation_s: float
) -> dict:
    """GenieDialog_query with Genie's figures for that one query."""
    event = query.event("GenieDialog_query")
    event.update(
        {
            "num-prompt-tokens": {"value": n_prompt, "unit": ""},
            "prompt-processing-rate": {
                "value": n_prompt / ttft_s if ttft_s > 0 else 0.0,
                "unit": "toks/sec",
            },
            "time-to-first-token": {"value": us(ttft_s), "unit": "us"},
            "num-generated-tokens": {"value": n_generated, "unit": ""},
            "token-generation-rate": {
                "value": n_generated / generation_s if generation_s > 0 else 0.0,
                "unit": "toks/sec",
            },
            "token-generation-time": {"value": us(generation_s), "unit": "us"},
        }
    )
    return event


def document(timestamp_s: float, components: list[dict]) -> dict:
    """The whole profile: header, metadata and one component per profiled dialog."""
    return {
        "header": {
            "header_version": {"major": 0, "minor": 1, "patch": 0},
            "version": {"major": 0, "minor": 1, "patch": 0},
            "artifact_type": "GENIE_PROFILE",
        },
        "metadata": {"timestamp": us(timestamp_s)},
        "components": components,
    }


def profile_document(
    *,
    create: Span,
    query: Span,
    free: Span,
    n_prompt: int,
    ttft_s: float,
    n_generated: int,
    generation_s: float,
) -> dict:
    query_ev = query_event(
        query,
        n_prompt=n_prompt,
        ttft_s=ttft_s,
        n_generated=n_generated,
        generation_s=generation_s,
    )
    events = [create_event(create), query_ev, free.event("GenieDialog_free")]
    return document(create.start, [{"name": "dialog0", "type": "dialog", "events": events}])


def write_profile(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=2))
