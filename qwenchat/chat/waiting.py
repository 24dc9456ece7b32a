"""Says, live, what a question waits for while Genie has not answered yet.

The first-token bound is long by design (a 7B model loads in seconds, but the bound allows
minutes before it calls Genie stuck): without a word, a hung Genie looks like a hung
qwenchat. After ``FIRST_NOTICE_S`` with no reply text this writes what is awaited and the
bound to stderr: on a terminal one line rewritten in place (cleared when the reply starts),
elsewhere a line now and then (``EVERY_S``), never into stdout's reply.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

FIRST_NOTICE_S = 3.0
EVERY_S = 15.0


def wait_line(elapsed: float, bound: float | None) -> str:
    limit = f"gives up after {bound:.0f} s" if bound is not None else "no time limit"
    return (f"waiting for Genie's first token (model load + prompt): {elapsed:.0f} s so far; "
            f"{limit} (--load-timeout)")


class WaitNotice:
    """Watches ``session.waiting_since`` / ``waiting_bound`` and the reply's first text."""

    def __init__(self, session, err: TextIO) -> None:  # noqa: ANN001 - a ChatSession
        self.session = session
        self.err = err
        self.started_text = threading.Event()
        self._stop = threading.Event()
        self._tty = _isatty(err)
        self._shown = False
        self._thread = threading.Thread(target=self._watch, name="qwenchat-wait", daemon=True)

    def __enter__(self) -> WaitNotice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._clear()

    def text_arrived(self) -> None:
        if not self.started_text.is_set():
            self.started_text.set()
            self._clear()

    def _clear(self) -> None:
        if self._tty and self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def _write(self, text: str) -> None:
        try:
            self.err.write(text)
            self.err.flush()
        except (OSError, ValueError):
            pass

    def _watch(self) -> None:
        next_at = FIRST_NOTICE_S
        while not self._stop.wait(0.5):
            if self.started_text.is_set():
                return
            since = self.session.waiting_since
            if since is None:
                continue
            elapsed = time.monotonic() - since
            if elapsed < next_at:
                continue
            line = wait_line(elapsed, self.session.waiting_bound)
            if self._tty:
                self._write("\r\x1b[K" + line)
                self._shown = True
                next_at = elapsed + 1.0
            else:
                self._write(line + "\n")
                next_at = elapsed + EVERY_S


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
