"""The JSON genie-t2t-run writes with ``--profile FILE`` (at exit, after the query).

Figures here come from Genie's own profiler on the phone, not from the host's clock.
Events are found by their ``"type"`` (never by list position: SDKs add events), and every
value's unit is checked before it is trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from qwenchat.errors import GenieError

_HINT = "Genie writes the profile at exit: a run that failed or was stopped leaves none."


@dataclass(frozen=True)
class GenieProfile:
    init_time_us: int | None  # GenieDialog_create "init-time": model load, paid per process
    num_prompt_tokens: int
    prompt_processing_rate: float  # toks/sec
    time_to_first_token_us: int
    num_generated_tokens: int
    token_generation_rate: float  # toks/sec, decode only (after the first token)
    token_generation_time_us: int
    query_duration_us: int | None  # the query event's "duration"

    @property
    def ttft_ms(self) -> float:
        return self.time_to_first_token_us / 1000.0

    @property
    def ttft_s(self) -> float:
        return self.time_to_first_token_us / 1e6

    @property
    def init_ms(self) -> float | None:
        return None if self.init_time_us is None else self.init_time_us / 1000.0

    @property
    def init_s(self) -> float | None:
        return None if self.init_time_us is None else self.init_time_us / 1e6

    @property
    def generation_ms(self) -> float:
        return self.token_generation_time_us / 1000.0

    @property
    def query_ms(self) -> float | None:
        return None if self.query_duration_us is None else self.query_duration_us / 1000.0


def _events(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("components"), list):
        raise GenieError("Genie profile has no \"components\" list", hint=_HINT)
    found = []
    for component in doc["components"]:
        if isinstance(component, dict) and isinstance(component.get("events"), list):
            found += [e for e in component["events"] if isinstance(e, dict)]
    return found


def _find(events: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    # The last one wins: a process that queried twice reports its latest query.
    matches = [e for e in events if e.get("type") == type_]
    return matches[-1] if matches else None


def _value(event: dict[str, Any], key: str, units: tuple[str, ...], kind: type) -> Any:
    entry = event.get(key)
    if not isinstance(entry, dict) or "value" not in entry:
        raise GenieError(f"Genie profile: {event.get('type')} has no {key!r} value", hint=_HINT)
    unit = entry.get("unit", "")
    if unit not in units:
        raise GenieError(
            f"Genie profile: {key} is in {unit!r}, expected {' or '.join(repr(u) for u in units)}",
            hint="This Genie version reports other units; qwenchat needs an update to read them.",
        )
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GenieError(f"Genie profile: {key} is not a number: {value!r}", hint=_HINT)
    if kind is int:
        if float(value) != int(value):
            raise GenieError(f"Genie profile: {key} is not a whole number: {value!r}")
        return int(value)
    return float(value)


def parse_profile(data: str | bytes) -> GenieProfile:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GenieError(f"Genie profile is not valid JSON: {exc}", hint=_HINT) from None
    events = _events(doc)
    query = _find(events, "GenieDialog_query")
    if query is None:
        raise GenieError("Genie profile has no GenieDialog_query event", hint=_HINT)
    create = _find(events, "GenieDialog_create")
    init = None
    if create is not None and "init-time" in create:
        init = _value(create, "init-time", ("us",), int)
    duration = query.get("duration")
    return GenieProfile(
        init_time_us=init,
        num_prompt_tokens=_value(query, "num-prompt-tokens", ("",), int),
        prompt_processing_rate=_value(query, "prompt-processing-rate", ("toks/sec",), float),
        time_to_first_token_us=_value(query, "time-to-first-token", ("us",), int),
        num_generated_tokens=_value(query, "num-generated-tokens", ("",), int),
        token_generation_rate=_value(query, "token-generation-rate", ("toks/sec",), float),
        token_generation_time_us=_value(query, "token-generation-time", ("us",), int),
        query_duration_us=int(duration) if isinstance(duration, int | float) else None,
    )
