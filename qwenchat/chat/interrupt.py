"""Ctrl-C during a reply stops the process on the phone, not the host program.

The kill is a round trip to the phone, so it runs in a thread: a signal handler must return
at once. Outside the main thread (tests driving a session) nothing is installed.
"""

from __future__ import annotations

import signal
import threading
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class cancel_on_interrupt:  # noqa: N801 - used as a context manager, reads as a phrase
    """``with cancel_on_interrupt(session): session.send(...)``"""

    def __init__(self, target: Cancellable) -> None:
        self.target = target
        self.previous = None

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        threading.Thread(target=self.target.cancel, daemon=True).start()

    def __enter__(self) -> cancel_on_interrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
