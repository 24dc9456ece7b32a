"""What one Genie query on the phone did: one typed record that chat, bench and doctor read.

Engines fill it; features only interpret it (a reply and its stop reason, a trial's figures,
doctor's verdict). Every stdout event carries the host time its chunk arrived, so host-side
figures can be recomputed from the record alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwenchat.genie.events import (
    Abort,
    Banner,
    ContextOverflow,
    End,
    Kpis,
    OtherLine,
    ReplyText,
    StreamEvent,
)
from qwenchat.genie.failures import GenieFailure, diagnose
from qwenchat.genie.profile import GenieProfile

# The one vocabulary of outcomes (runner/outcome.py), re-exported for the engines.
from qwenchat.runner.outcome import Outcome as Outcome


@dataclass(frozen=True)
class TimedEvent:
    at: float  # host time.monotonic() when the chunk carrying this event arrived
    event: StreamEvent


@dataclass
class QueryRecord:
    engine: str  # "process" (one genie-t2t-run per query) or "session" (a live dialog)
    started_at: float  # host monotonic: query() called (prompt and config pushes follow)
    sent_at: float = 0.0  # host monotonic: the query reached the phone's Genie
    ended_at: float = 0.0  # host monotonic: the output ended (or was given up)
    events: list[TimedEvent] = field(default_factory=list)
    stdout: bytes = b""  # as the phone sent it (doctor --report keeps it whole)
    outcome: Outcome = Outcome.FAILED
    exit_code: int | None = None
    stderr: str = ""
    pid: int | None = None
    profile: GenieProfile | None = None
    profile_json: dict[str, Any] | None = None  # the raw document Genie wrote
    failure: GenieFailure | None = None  # why it failed, in Genie's words, with advice
    error: str | None = None  # one line for outcomes without a Genie failure (lost, stuck)
    notes: list[str] = field(default_factory=list)  # host-side remarks (unreadable profile)
    # Host clock: the model load this query paid in a live session (genie-app's `dialog
    # create`); None when it paid none (a warm dialog) or loaded per process (genie-t2t-run,
    # whose load is in the profile's init-time).
    load_host_s: float | None = None

    # ----- derived from the events
    @property
    def text(self) -> str:
        return "".join(e.event.text for e in self.events if isinstance(e.event, ReplyText))

    @property
    def first_token_at(self) -> float | None:
        for timed in self.events:
            if isinstance(timed.event, ReplyText) and timed.event.text:
                return timed.at
        return None

    @property
    def ended(self) -> bool:
        return any(isinstance(e.event, End) for e in self.events)

    @property
    def aborted(self) -> bool:
        return any(isinstance(e.event, Abort) for e in self.events)

    @property
    def overflow_message(self) -> str | None:
        for timed in self.events:
            if isinstance(timed.event, ContextOverflow):
                return timed.event.message
        return None

    @property
    def libgenie_version(self) -> str | None:
        for timed in self.events:
            if isinstance(timed.event, Banner):
                return timed.event.version
        return None

    @property
    def kpis(self) -> Kpis | None:
        for timed in self.events:
            if isinstance(timed.event, Kpis):
                return timed.event
        return None

    @property
    def other_lines(self) -> list[str]:
        return [e.event.text for e in self.events if isinstance(e.event, OtherLine)]

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.FINISHED

    @property
    def message(self) -> str | None:
        """One line for a query that did not finish."""
        if self.failure is not None:
            return self.failure.message
        return self.error

    @property
    def hint(self) -> str | None:
        return self.failure.hint if self.failure is not None else None

    # ----- host clock
    @property
    def host_first_token_s(self) -> float | None:
        """From query() to the first reply text: what a user waits (pushes included)."""
        first = self.first_token_at
        return None if first is None else first - self.started_at

    @property
    def host_total_s(self) -> float:
        return self.ended_at - self.started_at


def classify(record: QueryRecord) -> Outcome:
    """How a query that ran to its end went, from its output alone; sets ``failure`` (Genie's
    words and advice) or ``error`` (one line) on the record. Live runs and replays of a real
    phone's capture go through this same function."""
    if record.overflow_message is not None:
        record.failure = diagnose(record.overflow_message)
        return Outcome.CONTEXT_EXCEEDED
    if record.exit_code in (0, None) and record.ended and not record.aborted:
        return Outcome.FINISHED
    text = "\n".join([*record.other_lines, record.stderr])
    record.failure = diagnose(text)
    if record.failure is not None and record.failure.kind == "context-overflow":
        # genie-t2t-run writes its refusal to stderr, which a phone with the shell protocol
        # keeps apart from stdout: the same outcome as the refusal seen on stdout.
        return Outcome.CONTEXT_EXCEEDED
    if record.failure is None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        code = record.exit_code
        record.error = (
            "genie-t2t-run stopped "
            + (f"with exit code {code}" if code is not None else "unexpectedly")
            + (f": {lines[-1]}" if lines else "")
        )
    return Outcome.FAILED


def genie_figures(record: QueryRecord) -> dict[str, Any] | None:
    """Genie's own figures for the query, with where they came from: the --profile JSON, or
    the [KPIS] block older SDKs print (only what was printed; nothing derived)."""
    p = record.profile
    if p is not None:
        return {
            "source": "genie --profile",
            "init_ms": p.init_ms,
            "prompt_tokens": p.num_prompt_tokens,
            "ttft_ms": p.ttft_ms,
            "prompt_tok_s": p.prompt_processing_rate,
            "generated_tokens": p.num_generated_tokens,
            "decode_tok_s": p.token_generation_rate,
        }
    k = record.kpis
    if k is not None:
        return {
            "source": "genie [KPIS] stdout",
            "init_ms": None if k.init_us is None else k.init_us / 1000,
            "prompt_ms": None if k.prompt_us is None else k.prompt_us / 1000,
            "prompt_tok_s": k.prompt_rate,
            "generation_ms": None if k.generation_us is None else k.generation_us / 1000,
            "decode_tok_s": k.generation_rate,
        }
    return None
