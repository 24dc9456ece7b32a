"""One progress view for a push to several phones: a bar per phone (bytes sent of what it
needs), its status while it is not sending, and a line as each phone finishes."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from qwenchat.assets.fleet import FleetProgress, PhonePushResult
from qwenchat.assets.push import PushProgress


class _PhoneBar(PushProgress):
    def __init__(self, view: RichFleetProgress, phone: str) -> None:
        self.view, self.phone = view, phone
        self.task: TaskID = view.progress.add_task(f"{phone}: connecting", total=None)

    def status(self, text: str) -> None:
        self.view.progress.update(self.task, description=f"{self.phone}: {text}")

    def begin(self, files: int, total_bytes: int) -> None:
        self.view.progress.update(
            self.task, total=total_bytes, description=f"{self.phone}: {files} file(s)"
        )

    def file_started(self, remote: str, size: int) -> None: ...

    def advance(self, nbytes: int) -> None:
        self.view.progress.advance(self.task, nbytes)

    def end(self) -> None:
        self.view.progress.update(self.task, description=f"{self.phone}: checking")


class RichFleetProgress(FleetProgress):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            console=self.console,
            transient=True,
        )
        self._bars: dict[str, _PhoneBar] = {}
        self._lock = threading.Lock()
        self._started = False

    def for_phone(self, phone: str) -> PushProgress:
        with self._lock:
            if not self._started:
                self.progress.start()
                self._started = True
            bar = self._bars[phone] = _PhoneBar(self, phone)
        return bar

    def phone_done(self, result: PhonePushResult) -> None:
        with self._lock:
            bar = self._bars.pop(result.phone, None)
        if bar is not None:
            self.progress.remove_task(bar.task)
        colour = {"failed": "red", "skipped": "yellow"}.get(result.status, "green")
        line = f"[{colour}]{escape(result.phone)}: {result.status}[/]"
        if result.message:
            line += f" — {escape(result.message)}"
        self.progress.console.print(line)

    def end(self) -> None:
        with self._lock:
            if self._started:
                self.progress.stop()
                self._started = False
