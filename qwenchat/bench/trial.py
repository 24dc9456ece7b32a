"""One benchmark trial: a fresh genie-t2t-run on the phone with ``--profile``, read from the
runner's record.

The runner (``qwenchat.runner``) does the running; a trial only interprets the record: Genie's
own figures from the profile, and the host clock from the moment the command was sent (not
from the prompt push) to the first token and to the process's end, so host-side overhead can
be told apart from Genie's own init + query + free.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from qwenchat.runner.record import Outcome, QueryRecord
from qwenchat.runner.request import QueryRequest, SamplerSettings

if TYPE_CHECKING:
    from qwenchat.runner.engine import Engine


@dataclass
class GenieFigures:
    """From Genie's own profiler (the --profile JSON), per trial."""

    init_ms: float | None
    ttft_ms: float
    prompt_tok_s: float
    decode_tok_s: float
    prompt_tokens: int
    generated_tokens: int
    generation_ms: float
    query_ms: float | None
    free_ms: float | None


@dataclass
class HostFigures:
    """From the host's clock: process start (the shell command sent) to first token / end."""

    first_token_ms: float | None
    total_ms: float
    overhead_ms: float | None  # total minus Genie's own create + query + free durations
    # time.monotonic() when the command was sent and when the stream ended: comparable with
    # the profile's timestamps only when phone and host share a clock (the emulator).
    sent_monotonic: float = 0.0
    ended_monotonic: float = 0.0


@dataclass
class TrialResult:
    length: int  # prompt tokens asked for (after clamping)
    seed: int
    ok: bool
    stop_reason: str  # "max-tokens", "eos", "error", "context-overflow", "cancelled"
    error: str | None = None
    error_hint: str | None = None
    exit_code: int | None = None
    genie: GenieFigures | None = None
    host: HostFigures | None = None
    libgenie_version: str | None = None
    profile: dict[str, Any] | None = None  # the raw JSON Genie wrote
    started_at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _event_duration_ms(doc: dict[str, Any], kind: str) -> float | None:
    for component in doc.get("components") or []:
        for event in component.get("events") or []:
            if isinstance(event, dict) and event.get("type") == kind:
                value = event.get("duration")
                if isinstance(value, int | float):
                    return value / 1000.0
    return None


class TrialRunner:
    """Runs trials through one engine (a fresh process per trial: how the published figures
    were measured)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run(self, prompt: str, *, length: int, gen_len: int, seed: int) -> TrialResult:
        # max-num-tokens = gen-len, and a new sampler seed per trial as Qualcomm's harness does.
        request = QueryRequest(prompt, SamplerSettings(max_tokens=gen_len, seed=seed))
        record = self.engine.query(request)
        return trial_result(record, length=length, gen_len=gen_len, seed=seed)


def trial_result(record: QueryRecord, *, length: int, gen_len: int, seed: int) -> TrialResult:
    """What a trial measured, from the runner's record."""
    result = TrialResult(length=length, seed=seed, ok=False, stop_reason="error")
    result.exit_code = record.exit_code
    result.libgenie_version = record.libgenie_version
    first = record.first_token_at
    result.host = HostFigures(
        first_token_ms=None if first is None else (first - record.sent_at) * 1000.0,
        total_ms=(record.ended_at - record.sent_at) * 1000.0,
        overhead_ms=None,
        sent_monotonic=record.sent_at,
        ended_monotonic=record.ended_at,
    )
    if record.outcome is Outcome.CONTEXT_EXCEEDED:
        result.stop_reason = "context-overflow"
        result.error = "Genie reports the context size was exceeded"
        return result
    if record.outcome is not Outcome.FINISHED:
        result.stop_reason = "cancelled" if record.outcome is Outcome.CUT else "error"
        result.error = record.message or f"genie-t2t-run: {record.outcome.value}"
        result.error_hint = record.hint
        return result
    profile, doc = record.profile, record.profile_json
    if profile is None or doc is None:
        result.error = (record.notes or ["genie-t2t-run exited without its --profile JSON"])[-1]
        return result
    result.profile = doc
    free_ms = _event_duration_ms(doc, "GenieDialog_free")
    result.genie = GenieFigures(
        init_ms=profile.init_ms,
        ttft_ms=profile.ttft_ms,
        prompt_tok_s=profile.prompt_processing_rate,
        decode_tok_s=profile.token_generation_rate,
        prompt_tokens=profile.num_prompt_tokens,
        generated_tokens=profile.num_generated_tokens,
        generation_ms=profile.generation_ms,
        query_ms=profile.query_ms,
        free_ms=free_ms,
    )
    if profile.init_ms is not None and profile.query_ms is not None:
        own = profile.init_ms + profile.query_ms + (free_ms or 0.0)
        result.host.overhead_ms = result.host.total_ms - own
    if profile.num_prompt_tokens != length:
        result.error = (
            f"Genie counted {profile.num_prompt_tokens} prompt tokens, "
            f"the bench asked for {length}"
        )
        result.error_hint = (
            "The phone's tokenizer or genie_config (bos-token) differs from the one the "
            "prompt was made with; push the bundle again."
        )
        return result
    result.ok = True
    result.stop_reason = "max-tokens" if profile.num_generated_tokens >= gen_len else "eos"
    return result
