"""How one Genie query ended: the one vocabulary the runner, chat, bench, the store and every
output speak.

The runner says what the phone did; a query that ended on its own (``FINISHED``: [END], exit
0) is then told apart by the feature that knows the request (the token limit it set, its stop
sequences, the context it counted): ``EOS``, ``MAX_TOKENS``, ``STOP_SEQUENCE`` or
``CONTEXT_FULL``. Everything else is final from the runner up. Stores and files written
before this vocabulary (chat's ``timeout``/``error``, bench's ``timed-out``/``cancelled``/
``context-overflow``...) are read through ``Outcome.parse``; the stores' rows are rewritten
by a migration (chat m027, bench m045).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    FINISHED = "finished"  # [END] and exit 0: Genie stopped on its own; why, see below
    # ...ended on its own, and why (decided by chat or bench from the request and figures):
    EOS = "eos"  # the model ended its reply itself
    MAX_TOKENS = "max_tokens"  # generated max-num-tokens (--max-tokens, bench --gen-len)
    STOP_SEQUENCE = "stop_sequence"  # the reply ended in one of the request's stop sequences
    CONTEXT_FULL = "context_full"  # the reply filled the context (libGenie: [END], then a
    # failed query with "Context Size was exceeded."; builds before that exception: exit 0)
    # ...did not end on its own:
    CONTEXT_EXCEEDED = "context_exceeded"  # Genie refused: prompt + state beyond the context
    CUT = "cut"  # we stopped it (Ctrl-C, a signal, cancel())
    FAILED = "failed"  # a non-zero exit, no [END], an [ABORT]; or figures not to be trusted
    TIMED_OUT = "timed_out"  # a wait bound ran out; the process was stopped
    DEVICE_LOST = "device_lost"  # the link to the phone dropped mid-query

    @classmethod
    def parse(cls, text: str | None) -> Outcome:
        """A stored value, this vocabulary's or an older one's; unknown means FAILED."""
        if text in _OLDER:
            return _OLDER[text]
        try:
            return cls(text or "failed")
        except ValueError:
            return cls.FAILED

    @property
    def label(self) -> str:
        """In words, for tables and summaries."""
        return self.value.replace("_", " ")


# The words chat (up to m027) and bench (up to m045) stored before there was one vocabulary.
_OLDER: dict[str, Outcome] = {
    # chat
    "timeout": Outcome.TIMED_OUT,
    "error": Outcome.FAILED,
    # bench
    "timed-out": Outcome.TIMED_OUT,
    "cancelled": Outcome.CUT,
    "context-overflow": Outcome.CONTEXT_EXCEEDED,
    "context-full": Outcome.CONTEXT_FULL,
    "max-tokens": Outcome.MAX_TOKENS,
    "device-lost": Outcome.DEVICE_LOST,
}
OLDER_WORDS: tuple[tuple[str, str], ...] = tuple((old, new.value) for old, new in _OLDER.items())

__all__ = ["OLDER_WORDS", "Outcome"]
