"""A signal during a reply stops the process on the phone, not the host program mid-write.

Ctrl-C (SIGINT) stops the reply and the chat goes on. SIGTERM (a CI timeout, a service
manager) and SIGHUP (the terminal closed) do the same first, so the partial reply is stored
with its stop reason, and then end the program: when the guarded block is over,
``Terminated`` (qwenchat.signals; a KeyboardInterrupt) is raised and the CLI exits 143/129.

The kill is a round trip to the phone, so it runs in a thread: a signal handler must return
at once. Outside the main thread (tests driving a session) nothing is installed.
"""

from __future__ import annotations

import signal
import threading
from typing import Protocol

from qwenchat.signals import Terminated

GUARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class cancel_on_interrupt:  # noqa: N801 - used as a context manager, reads as a phrase
    """``with cancel_on_interrupt(session): session.send(...)``

    After the block, ``interrupted`` says whether Ctrl-C came; a SIGTERM or SIGHUP that came
    is raised as ``Terminated`` on the way out (unless another KeyboardInterrupt already is).
    """

    def __init__(self, target: Cancellable) -> None:
        self.target = target
        self.previous: dict[int, object] = {}
        self.interrupted = False
        self.terminated: int | None = None  # the first SIGTERM/SIGHUP received

    def _handler(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            self.interrupted = True
        elif self.terminated is None:
            self.terminated = signum
        threading.Thread(target=self._cancel, name="cancel", daemon=True).start()

    def _cancel(self) -> None:
        try:
            self.target.cancel()
        except Exception:  # noqa: BLE001 - a phone that is gone: the query's bounds end it
            pass

    def __enter__(self) -> cancel_on_interrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in GUARDED:
                self.previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self.previous = {}
        if self.terminated is not None and not isinstance(exc, KeyboardInterrupt):
            raise Terminated(self.terminated) from exc


__all__ = ["GUARDED", "cancel_on_interrupt"]
