"""Which phone answers a request, and the bounded queue of requests waiting for one.

One phone answers one request at a time. A request goes to an idle phone holding its model,
preferring the one whose dialog it extends (only its new turn is prefilled there), then one
whose conversation is the request's (same transcript, dialog to be rebuilt), then the phone
idle the longest. When every phone is busy it waits in a FIFO queue of at most ``limit``
requests; one more is refused at once (429 with Retry-After), never held unbounded. Lives on
the server's event loop: no locks, every change happens between awaits.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from qwenchat.serve.errors import APIError
from qwenchat.serve.phones import PhoneSlot
from qwenchat.serve.protocol import ChatRequest

DEFAULT_QUEUE = 16


@dataclass
class _Waiter:
    request: ChatRequest
    future: asyncio.Future[PhoneSlot]


@dataclass
class Pool:
    slots: list[PhoneSlot]
    limit: int = DEFAULT_QUEUE
    _waiting: deque[_Waiter] = field(default_factory=deque)
    _idle_since: dict[int, float] = field(default_factory=dict)
    _durations: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    draining: bool = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def models(self) -> dict[str, list[PhoneSlot]]:
        out: dict[str, list[PhoneSlot]] = {}
        for slot in self.slots:
            out.setdefault(slot.model, []).append(slot)
        return out

    def check_model(self, request: ChatRequest) -> None:
        if not any(slot.holds(request) for slot in self.slots):
            held = ", ".join(sorted(self.models()))
            raise APIError(
                404,
                f"the model {request.model!r} does not exist here: the phones hold {held}",
                code="model_not_found",
                param="model",
            )

    async def acquire(self, request: ChatRequest) -> PhoneSlot:
        """A phone for ``request``, marked busy; waits in the queue (cancellable) or raises
        APIError 404 (no phone holds the model), 429 (queue full), 503 (draining)."""
        self.check_model(request)
        if self.draining:
            raise APIError(503, "the server is shutting down", code="shutting_down",
                           headers={"Retry-After": "5"})
        slot = self._pick(request)
        if slot is not None:
            return self._take(slot)
        if len(self._waiting) >= self.limit:
            raise APIError(
                429,
                f"every phone is busy and {len(self._waiting)} requests already wait "
                f"(--queue {self.limit}); retry later",
                code="queue_full",
                headers={"Retry-After": str(self.retry_after())},
            )
        waiter = _Waiter(request, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result(), 0.0)  # handed over as it was cancelled
            raise
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    def release(self, slot: PhoneSlot, seconds: float) -> None:
        """``slot`` is free again (its reply took ``seconds``): the oldest waiter that can use
        it gets it at once."""
        if seconds > 0:
            self._durations.append(seconds)
        slot.busy = False
        self._idle_since[id(slot)] = time.monotonic()
        for waiter in list(self._waiting):
            if waiter.future.done():
                self._waiting.remove(waiter)
                continue
            if slot.holds(waiter.request) and not self.draining:
                self._waiting.remove(waiter)
                waiter.future.set_result(self._take(slot))
                return

    def drain(self) -> None:
        """No new request is taken; the waiting ones are refused (503)."""
        self.draining = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(
                    APIError(503, "the server is shutting down", code="shutting_down",
                             headers={"Retry-After": "5"})
                )

    def cut_all(self) -> None:
        """The drain's grace period is over: every reply still running is cut (and stored
        by its session)."""
        for slot in self.slots:
            if slot.busy:
                slot.cancel("drain")

    def retry_after(self) -> int:
        """Seconds until a place in the queue is likely free: the median reply time of the
        recent requests times the queue's length per phone (at least 1)."""
        typical = statistics.median(self._durations) if self._durations else 1.0
        per_phone = (len(self._waiting) + 1) / max(1, len(self.slots))
        return max(1, math.ceil(typical * per_phone))

    def _pick(self, request: ChatRequest) -> PhoneSlot | None:
        idle = [s for s in self.slots if not s.busy and s.holds(request)]
        if not idle:
            return None

        def rank(slot: PhoneSlot) -> tuple[int, int, int, float]:
            return (
                0 if slot.extends(request) else 1,
                0 if slot.same_conversation(request) else 1,
                1 if slot.lost else 0,  # a lost phone only when nothing else is idle
                self._idle_since.get(id(slot), 0.0),
            )

        return min(idle, key=rank)

    def _take(self, slot: PhoneSlot) -> PhoneSlot:
        slot.busy = True
        return slot


__all__ = ["DEFAULT_QUEUE", "Pool"]
