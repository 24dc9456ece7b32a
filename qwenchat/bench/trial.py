"""One benchmark trial: a fresh genie-t2t-run on the phone with ``--profile``, read from the
runner's record.

The runner (``qwenchat.runner``) does the running; a trial only interprets the record: Genie's
own figures from the profile, and the host clock from the moment the command was sent (not
from the prompt push) to the first token and to the process's end, so host-side overhead can
be told apart from Genie's own init + query + free. The result is a typed ``TrialResult``
(``records.py``) that storage and every printer read as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qwenchat.bench.records import GenieFigures, HostFigures, StopReason, TrialResult
from qwenchat.runner.record import Outcome, QueryRecord
from qwenchat.runner.request import QueryRequest, SamplerSettings, WaitBounds

if TYPE_CHECKING:
    from qwenchat.runner.engine import Engine

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

    def __init__(
        self,
        engine: Engine,
        *,
        context_size: int | None = None,
        load_s: float | None = None,
        stall_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.context_size = context_size
        self.load_s = load_s
        self.stall_s = stall_s

    def bounds(self, prompt_tokens: int) -> WaitBounds:
        return WaitBounds.for_prompt(prompt_tokens, load_s=self.load_s, stall_s=self.stall_s)

    def run(
        self, prompt: str, *, length: int, gen_len: int, seed: int, run_seed: int | None = None
    ) -> TrialResult:
        # max-num-tokens = gen-len, and a new sampler seed per trial as Qualcomm's harness does.
        # A warm dialog keeps the run's seed: the sampler lives in the dialog's config, and a
        # new one would create the dialog again (a model load) every trial.
        sampler_seed = seed
        if self.engine.keeps_model_loaded and run_seed is not None:
            sampler_seed = run_seed
        request = QueryRequest(
            prompt,
            SamplerSettings(max_tokens=gen_len, seed=sampler_seed),
            bounds=self.bounds(length),
        )
        record = self.engine.query(request)
        return trial_result(
            record, length=length, gen_len=gen_len, seed=seed, context_size=self.context_size
        )


def stop_reason(
    prompt_tokens: int, generated: int, *, gen_len: int, context_size: int | None
) -> StopReason:
    """Why a query that finished ([END], exit 0) stopped: Genie does not say.

    Reaching --gen-len is the limit; otherwise prompt + generated tokens filling the context
    means Genie ran out of room (older libGenie builds end such a reply with [END] and exit 0,
    like an EOS; newer ones fail the query: CONTEXT_EXCEEDED, a context-overflow trial);
    anything else is the model's own end of reply.
    """
    if generated >= gen_len:
        return StopReason.MAX_TOKENS
    if context_size and prompt_tokens + generated >= context_size:
        return StopReason.CONTEXT_FULL
    return StopReason.EOS


def trial_result(
    record: QueryRecord,
    *,
    length: int,
    gen_len: int,
    seed: int,
    context_size: int | None = None,
) -> TrialResult:
    """What a trial measured, from the runner's record."""
    result = TrialResult(length=length, seed=seed, ok=False, stop_reason=StopReason.FAILED)
    result.exit_code = record.exit_code
    result.libgenie_version = record.libgenie_version
    first = record.first_token_at
    sent = record.sent_at or record.started_at  # a link lost before the command was sent
    result.host = HostFigures(
        first_token_ms=None if first is None else (first - sent) * 1000.0,
        total_ms=(record.ended_at - sent) * 1000.0,
        overhead_ms=None,
        sent_monotonic=sent,
        ended_monotonic=record.ended_at,
    )
    if record.outcome is not Outcome.FINISHED:
        result.stop_reason = record.outcome  # the runner's word is the trial's
        if record.outcome is Outcome.CONTEXT_EXCEEDED:
            result.error = "Genie reports the context size was exceeded"
        else:
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
    if record.engine == "session" and profile.query_ms is not None:
        # A warm dialog: the host clock starts at the query line (any load came before it).
        result.host.overhead_ms = result.host.total_ms - profile.query_ms
    elif profile.init_ms is not None and profile.query_ms is not None:
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
    result.stop_reason = stop_reason(
        profile.num_prompt_tokens, profile.num_generated_tokens,
        gen_len=gen_len, context_size=context_size,
    )
    return result
