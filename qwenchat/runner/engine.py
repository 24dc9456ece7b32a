"""The interface every way of running Genie on the phone implements.

``ProcessEngine`` (one genie-t2t-run per query, dialog state carried between processes with
--save/--restore) and ``SessionEngine`` (one genie-app fed a script through a FIFO keeps the
dialog, and the loaded model, alive for a whole chat) behind the same four methods.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from qwenchat.errors import DeviceError
from qwenchat.runner.phone_bundle import PhoneBundle
from qwenchat.runner.record import Outcome, QueryRecord
from qwenchat.runner.request import QueryRequest

if TYPE_CHECKING:
    from qwenchat.device.base import Device
    from qwenchat.layout import PhoneLayout

TextCallback = Callable[[str], None]


class Engine(ABC):
    name: str
    # Capabilities: what callers ask of an engine instead of testing its name.
    # The model stays loaded between queries (one warm dialog): a sampler change or a cut
    # that stops the phone's process costs a model load.
    keeps_model_loaded: bool = False

    def __init__(self, bundle: PhoneBundle) -> None:
        self.bundle = bundle
        # What the user should hear once about how queries run (a fallback, and why).
        self.notes: list[str] = []

    @property
    def device(self) -> Device:
        return self.bundle.device

    @property
    def layout(self) -> PhoneLayout:
        return self.bundle.layout

    @property
    def can_abort(self) -> bool:
        """``cancel()`` stops only the reply (Genie's abort), not the process holding the
        model."""
        return False

    @property
    def holds_model(self) -> bool:
        """The model is loaded on the phone now (the last query, even a cut one, left it)."""
        return False

    @property
    def sampler_per_query(self) -> bool:
        """A query's sampler settings apply to that query without a new dialog (a process per
        query reads its own config; a live dialog only if its runtime can re-apply one)."""
        return True

    @property
    def libgenie_version(self) -> str | None:
        """The libGenie version the engine's runtime reported before any query, if it does
        (a query's own banner is in its record)."""
        return None

    @abstractmethod
    def query(self, request: QueryRequest, on_text: TextCallback | None = None) -> QueryRecord:
        """Run one query and return what happened. Never raises for what Genie or the link
        did (that is the record's outcome); KeyboardInterrupt stops the phone's process and
        propagates."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the running query; safe from any thread or a signal handler."""

    @abstractmethod
    def has_dialog(self, dialog: str) -> bool:
        """Whether a follow-up on ``dialog`` can continue its context."""

    @abstractmethod
    def forget(self, dialog: str) -> None:
        """Drop what the phone keeps for ``dialog`` (its state is large: the KV cache)."""

    def close(self) -> None:  # noqa: B027 - most engines hold nothing between queries
        """Release what the engine holds on the phone."""

    def _judge_timeout(self, request: QueryRequest, record: QueryRecord) -> None:
        """A bound ran out: TIMED_OUT (a stuck Genie) if the phone still answers a trivial
        command on a side channel, DEVICE_LOST if it does not. The engine stops what it ran."""
        record.ended_at = time.monotonic()
        try:
            with self.device.side_channel() as dev:
                dev.shell("true", timeout=5)
        except DeviceError as exc:
            record.outcome = Outcome.DEVICE_LOST
            record.error = exc.message
            return
        record.outcome = Outcome.TIMED_OUT
        if record.first_token_at is None:
            record.error = (
                f"Genie gave no reply within {request.bounds.first_token:.0f} s "
                "(model load + prompt processing); it was stopped"
            )
        else:
            record.error = (
                f"Genie stopped producing tokens for {request.bounds.stall:.0f} s; it was stopped"
            )
