"""What genie-t2t-run's stdout says, one typed event at a time (see ``stream.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PidLine:
    """The process id a host stops the run by: printed by the shell before it execs Genie
    (``source="shell"``), or Genie's own ``genie-t2t-run pid: N`` with ``--pid``."""

    pid: int
    source: str = "genie"  # "genie" | "shell"


@dataclass(frozen=True)
class Banner:
    """``Using libGenie.so version 1.x.y``."""

    version: str


@dataclass(frozen=True)
class PromptEcho:
    """The prompt as Genie echoed it after ``[PROMPT]: `` (or the token ids with ``-tok``)."""

    text: str


@dataclass(frozen=True)
class Begin:
    """``[BEGIN]: ``: the reply starts."""


@dataclass(frozen=True)
class Resume:
    """``[RESUME]: `` outside a reply: a paused query continues."""


@dataclass(frozen=True)
class Complete:
    """``[COMPLETE]: `` outside a reply."""


@dataclass(frozen=True)
class ReplyText:
    """A piece of the reply: whole characters only, never a marker."""

    text: str


@dataclass(frozen=True)
class End:
    """``[END]``: the reply is over (Genie stopped at eos, max-num-tokens or the context)."""


@dataclass(frozen=True)
class Abort:
    """``[ABORT]: ``: the query was aborted by a signal."""


@dataclass(frozen=True)
class ContextOverflow:
    """Genie ran out of context ("Context limit exceeded", "Context Size was exceeded")."""

    message: str


@dataclass(frozen=True)
class Kpis:
    """The ``[KPIS]:`` block genie-t2t-run printed up to QAIRT 2.34 (us, toks/sec)."""

    init_us: int | None
    prompt_us: int | None
    prompt_rate: float | None
    generation_us: int | None
    generation_rate: float | None


@dataclass(frozen=True)
class OtherLine:
    """Any other line outside the reply (errors, log lines, thread chatter)."""

    text: str


StreamEvent = (
    PidLine
    | Banner
    | PromptEcho
    | Begin
    | Resume
    | Complete
    | ReplyText
    | End
    | Abort
    | ContextOverflow
    | Kpis
    | OtherLine
)
