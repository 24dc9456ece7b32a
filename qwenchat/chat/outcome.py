"""What became of one reply: why it stopped, the one line to show when it failed, its figures.

The runner's ``QueryRecord`` says what the phone did (``Outcome``); this module tells a
reply that ended on its own apart (EOS, the token limit, a stop sequence, a full context). Every way a reply can end has its own stop reason, so the transcript and
``qwenchat history`` never show a reply the phone lost, or one Genie was stopped in, as if it
had ended normally.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from qwenchat.errors import DeviceLostError
from qwenchat.runner.record import Outcome

if TYPE_CHECKING:
    from qwenchat.runner.record import QueryRecord

DEFAULT_CTX_SIZE = 4096
# Where Genie's own figures come from, by engine.
GENIE_SOURCES = {"process": "genie --profile", "session": "genie-app profile save"}


# Why a reply stopped: the runner's vocabulary (runner/outcome.py), whole. A reply is never
# FINISHED: decide_stop_reason() says which of EOS, MAX_TOKENS, STOP_SEQUENCE, CONTEXT_FULL.
StopReason = Outcome


# Replies that did not end on their own: no dialog state can be trusted after them.
UNFINISHED = frozenset(
    {StopReason.CUT, StopReason.TIMED_OUT, StopReason.DEVICE_LOST, StopReason.FAILED}
)


def decide_stop_reason(
    text: str,
    num_generated: int | None,
    max_tokens: int | None,
    stop_sequences: list[str] | tuple[str, ...] | None,
    *,
    ctx_used: int | None = None,
    ctx_size: int | None = None,
) -> StopReason:
    """Why a reply that ended normally ([END], exit 0) stopped.

    Genie does not say. A full context comes first: older libGenie builds end a reply with
    [END] and exit 0 when the context fills (newer ones fail the query, see
    ``stop_from_record``; it cannot go on, whatever max-num-tokens says), and the user's
    remedy is different (drop turns, not /continue). Then the profile's generated-token
    count reaching max-num-tokens means the limit, a reply ending in a stop sequence means
    that, anything else is the EOS token.
    """
    if ctx_used is not None and ctx_size and ctx_used >= ctx_size:
        return StopReason.CONTEXT_FULL
    if max_tokens is not None and num_generated is not None and num_generated >= max_tokens:
        return StopReason.MAX_TOKENS
    for seq in stop_sequences or ():
        if seq and text.rstrip().endswith(seq.rstrip() or seq):
            return StopReason.STOP_SEQUENCE
    return StopReason.EOS


@dataclass
class ReplyFigures:
    """Every figure of one reply, each tagged by where it comes from."""

    # From Genie's own profiler (--profile JSON); None when no profile was written.
    genie_init_us: float | None = None
    genie_prompt_tokens: int | None = None
    genie_prefill_rate: float | None = None
    genie_ttft_us: float | None = None
    genie_generated_tokens: int | None = None
    genie_decode_rate: float | None = None
    genie_decode_time_us: float | None = None
    # From the host's clock, counted from the moment the message was handed to the session
    # (Enter): everything the user waits, rendering and token counting included.
    host_first_token_s: float | None = None
    host_total_s: float | None = None
    host_prepare_s: float | None = None  # Enter → the query leaves for the phone
    # Host clock: the model load this reply waited for in a live session (genie-app's dialog
    # create, paid once per session); None on a warm dialog and on the per-turn engine (whose
    # load, paid every turn, is Genie's init time above).
    host_load_s: float | None = None
    # How the reply ran: "session" (one genie-app, the dialog kept alive) or "process" (one
    # genie-t2t-run per turn).
    engine: str = "process"
    # Host bookkeeping.
    counted_prompt_tokens: int | None = None
    ctx_used: int | None = None
    ctx_size: int = DEFAULT_CTX_SIZE
    simulated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "genie": {
                "source": GENIE_SOURCES.get(self.engine, "genie --profile"),
                "init_time_us": self.genie_init_us,
                "num_prompt_tokens": self.genie_prompt_tokens,
                "prompt_processing_rate_tok_s": self.genie_prefill_rate,
                "time_to_first_token_us": self.genie_ttft_us,
                "num_generated_tokens": self.genie_generated_tokens,
                "token_generation_rate_tok_s": self.genie_decode_rate,
                "token_generation_time_us": self.genie_decode_time_us,
            },
            "host": {
                "source": "host clock, from Enter",
                "first_token_s": self.host_first_token_s,
                "total_s": self.host_total_s,
                "prepare_s": self.host_prepare_s,
                "load_s": self.host_load_s,
            },
            "context": {
                "source": "host tokenizer + genie profile",
                "prompt_tokens_counted": self.counted_prompt_tokens,
                "used": self.ctx_used,
                "size": self.ctx_size,
            },
            "simulated": self.simulated,
        }


class PromptMode(StrEnum):
    FOLLOWUP = "followup"
    REBUILD = "rebuild"
    CONTINUATION = "continuation"


@dataclass
class ReplyResult:
    text: str
    stop: StopReason
    mode: PromptMode
    figures: ReplyFigures
    error: str | None = None
    error_hint: str | None = None
    overflow: bool = False  # Genie reported a context overflow (mapped to the drop offer)

    @property
    def ok(self) -> bool:
        """The phone did what was asked (a reply the user cut counts: nothing failed)."""
        return self.stop not in (StopReason.FAILED, StopReason.TIMED_OUT, StopReason.DEVICE_LOST)


def stop_from_record(
    record: QueryRecord,
    text: str,
    figures: ReplyFigures,
    *,
    max_tokens: int | None,
    stop_sequences: list[str] | tuple[str, ...] | None,
) -> tuple[StopReason, str | None, str | None]:
    """(stop reason, one-line error, hint) for what the runner recorded."""
    outcome = record.outcome
    if outcome is Outcome.CUT:
        return outcome, None, None
    if outcome is Outcome.DEVICE_LOST:
        return (
            outcome,
            record.message or "lost the connection to the phone",
            DeviceLostError.default_hint,
        )
    if outcome is Outcome.TIMED_OUT:
        return (
            outcome,
            record.message or "Genie gave no output within its bound and was stopped",
            "If the phone is only slow, raise --load-timeout or --stall-timeout.",
        )
    if outcome is Outcome.CONTEXT_EXCEEDED:
        if text:
            # The context filled while the reply was being generated: the reply is whole as
            # far as the context allowed. libGenie ends it with [END], "Context Size was
            # exceeded." and a failed query (genie-t2t-run exits 1, no --save state, no
            # profile): the words are the reply, the failure is only the context's.
            return StopReason.CONTEXT_FULL, None, None
        return (
            StopReason.FAILED,
            "the conversation no longer fits the model's context",
            "Drop the oldest turns or /clear.",
        )
    if outcome is not Outcome.FINISHED:
        return StopReason.FAILED, record.message or "genie-t2t-run failed", record.hint
    stop = decide_stop_reason(
        text,
        figures.genie_generated_tokens,
        max_tokens,
        stop_sequences,
        ctx_used=figures.ctx_used,
        ctx_size=figures.ctx_size,
    )
    return stop, None, None


__all__ = [
    "UNFINISHED",
    "PromptMode",
    "ReplyFigures",
    "ReplyResult",
    "StopReason",
    "decide_stop_reason",
    "stop_from_record",
]
