"""SIGTERM and SIGHUP do what Ctrl-C does.

A CI timeout or a service manager sends SIGTERM; a closed terminal sends SIGHUP. Python's
default is to die on the spot, leaving genie-t2t-run running on the phone and a bench run
marked running. ``install()`` turns both into ``Terminated`` (a KeyboardInterrupt), so every
path that already stops the phone's process, saves and marks on Ctrl-C does the same for
them; the exit code says which signal it was (128 + signal number, as a shell reports it).
"""

from __future__ import annotations

import signal
import threading

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal other than SIGINT."""

    # The first signal that asked this process to stop: the CLI's exit code, even where a
    # framework (typer) catches the KeyboardInterrupt and keeps only "130".
    received: int | None = None

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        if Terminated.received is None:
            Terminated.received = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _raise(signum: int, frame: object) -> None:
    raise Terminated(signum)


def install() -> None:
    """Raise Terminated in the main thread on SIGTERM and SIGHUP (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        signal.signal(signum, _raise)


def exit_code(exc: KeyboardInterrupt) -> int:
    return exc.exit_code if isinstance(exc, Terminated) else 130
