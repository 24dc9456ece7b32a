"""A Rich display for push-assets: a transient bar per file, one for the total, MB/s, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from qwenchat.assets.push import PushProgress


class RichPushProgress(PushProgress):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._total: TaskID | None = None
        self._file: TaskID | None = None
        self._status = self.console.status("")
        self._status_on = False

    def status(self, text: str) -> None:
        if self._total is not None:
            self.console.print(f"[dim]{text}[/]", highlight=False)
            return
        self._status.update(text)
        if not self._status_on:
            self._status.start()
            self._status_on = True

    def _stop_status(self) -> None:
        if self._status_on:
            self._status.stop()
            self._status_on = False

    def begin(self, files: int, total_bytes: int) -> None:
        self._stop_status()
        self._progress.start()
        self._total = self._progress.add_task(f"{files} file(s)", total=total_bytes)

    def file_started(self, remote: str, size: int) -> None:
        if self._file is not None:
            self._progress.remove_task(self._file)
        self._file = self._progress.add_task(f"  {remote}", total=size)

    def advance(self, nbytes: int) -> None:
        if self._file is not None:
            self._progress.advance(self._file, nbytes)
        if self._total is not None:
            self._progress.advance(self._total, nbytes)

    def file_finished(self, remote: str) -> None:
        if self._file is not None:
            self._progress.remove_task(self._file)
            self._file = None

    def end(self) -> None:
        self._stop_status()
        if self._total is not None:
            self._progress.stop()
            self._total = None
