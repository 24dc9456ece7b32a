"""How a download shows itself: a live bar on a terminal, plain lines in a pipe or a log.

Both write to stderr (stdout carries the bundle path or JSON, which scripts read). The bar
is Rich's (bytes done/total, rate, ETA), transient, imported only when a terminal will see
it. The plain form prints a line per tenth of the file -- a log gets eleven lines for a
5 GB download, not a redraw every 100 ms -- and a summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID

    from qwenchat.hub.download import DownloadProgress


def human_bytes(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} kB"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class _Tally:
    """Bytes moved in this run and the time they took: rate, ETA and the summary line."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.name = ""
        self.total: int | None = None
        self.first = self.done = 0
        self.t0 = 0.0

    def start(self, name: str, total: int | None, done: int) -> None:
        self.name, self.total, self.first, self.done = name, total, done, done
        self.t0 = self.clock()

    def rate(self) -> float | None:
        elapsed = self.clock() - self.t0
        moved = self.done - self.first
        return moved / elapsed if elapsed > 0 and moved > 0 else None

    def summary(self, ok: bool) -> str:
        if not ok:
            return f"{self.name}: stopped at {human_bytes(self.done)}"
        rate = self.rate()
        speed = f" ({human_bytes(rate)}/s)" if rate else ""
        took = _duration(self.clock() - self.t0)
        return f"downloaded {self.name}: {human_bytes(self.done)} in {took}{speed}"


def _write_line(stream: TextIO | None, text: str) -> None:
    stream = stream or sys.stderr
    stream.write(text + "\n")
    stream.flush()


class PlainProgress:
    """Lines like ``x.zip: 30% (1.42 GB of 4.72 GB), 85.3 MB/s, ETA 39 s``."""

    STEP = 10  # percent between lines
    UNKNOWN_STEP = 256 * 1024 * 1024  # bytes between lines when the size is unknown

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._tally = _Tally(clock)
        self._next = 0

    def begin(self, name: str, total: int | None, done: int) -> None:
        self._tally.start(name, total, done)
        size = human_bytes(total) if total is not None else "size unknown"
        if done and total:
            _write_line(self._stream, f"resuming {name} at {human_bytes(done)} of {size}")
        else:
            _write_line(self._stream, f"downloading {name} ({size})")
        self._next = self._following(done)

    def _following(self, done: int) -> int:
        """The byte count at which the next line is due: the next tenth of the file."""
        total = self._tally.total
        if total:
            tenth = self.STEP * total // 100 or total
            return (done * 100 // (self.STEP * total) + 1) * tenth
        return (done // self.UNKNOWN_STEP + 1) * self.UNKNOWN_STEP

    def update(self, done: int) -> None:
        t = self._tally
        t.done = done
        if done < self._next or (t.total is not None and done >= t.total):
            return  # the last line is end()'s
        self._next = self._following(done)
        rate = t.rate()
        speed = f", {human_bytes(rate)}/s" if rate else ""
        if t.total:
            eta = f", ETA {_duration((t.total - done) / rate)}" if rate else ""
            pct = done * 100 // t.total
            line = f"{t.name}: {pct}% ({human_bytes(done)} of {human_bytes(t.total)}){speed}{eta}"
        else:
            line = f"{t.name}: {human_bytes(done)}{speed}"
        _write_line(self._stream, line)

    def end(self, ok: bool) -> None:
        _write_line(self._stream, self._tally.summary(ok))


class RichProgress:
    """A transient bar on the terminal, then the same summary line as the plain form."""

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.table import Column

        self._stream = stream or sys.stderr
        self._bar = Progress(
            # A file name is long: cut it, never wrap the bar onto a second line.
            TextColumn(
                "{task.description}",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=48),
            ),
            BarColumn(),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self._stream, highlight=False),
            transient=True,
        )
        self._tally = _Tally(clock)
        self._task: TaskID | None = None

    def begin(self, name: str, total: int | None, done: int) -> None:
        self._tally.start(name, total, done)
        # The end of an asset's name says which chip it is for: keep that end.
        shown = name if len(name) <= 48 else "…" + name[-47:]
        self._task = self._bar.add_task(shown, total=total, completed=done)
        self._bar.start()

    def update(self, done: int) -> None:
        self._tally.done = done
        if self._task is not None:
            self._bar.update(self._task, completed=done)

    def end(self, ok: bool) -> None:
        if self._task is not None:
            self._bar.stop()
            self._task = None
        _write_line(self._stream, self._tally.summary(ok))


def download_progress(stream: TextIO | None = None) -> DownloadProgress:
    """The bar on a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return RichProgress(stream)
    return PlainProgress(stream)
