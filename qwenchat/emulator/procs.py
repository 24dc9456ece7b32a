"""The process table of one emulated phone: only what this emulator started.

Shells get pseudo pids (they are threads, not host processes); the simulated genie-t2t-run
runs as a real host process and is listed under its REAL pid, so the pid it prints for
``--pid``, ``ps``, ``pidof`` and ``kill`` all agree. ``kill`` refuses every pid not in this
table, so a client of the emulator can never signal a host process it did not launch, and
two emulators side by side never see each other's processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_PSEUDO_PID = 4000
# One pseudo-pid counter per host process: two emulated phones served by the same process
# never hand out the same number, so `kill N` on one can never name a shell of the other.
_pseudo_lock = threading.Lock()
_pseudo_next = [FIRST_PSEUDO_PID]


@dataclass
class ProcInfo:
    pid: int
    ppid: int
    name: str
    args: list[str]
    kind: str  # "shell" (pseudo process, a thread) or "child" (real host process)
    started: float = field(default_factory=time.time)
    user: str = "shell"

    @property
    def cmdline(self) -> str:
        return " ".join(self.args) if self.args else self.name


@dataclass
class _Entry:
    info: ProcInfo
    on_signal: Callable[[int], None] | None = None
    popen: subprocess.Popen | None = None


class ProcessTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}

    def _pid_taken(self, pid: int) -> bool:
        if pid in self._entries:
            return True
        # Skip pids alive on the host so a genie launched later is less likely to share one
        # with a pseudo shell (a genie can only take a pid that is free when it starts).
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    def add_shell(
        self, args: list[str], on_signal: Callable[[int], None], *, ppid: int = 1, name: str = "sh"
    ) -> int:
        """Register a shell (a pseudo process); ``on_signal(sig)`` ends it."""
        with self._lock, _pseudo_lock:
            while self._pid_taken(_pseudo_next[0]):
                _pseudo_next[0] += 1
            pid = _pseudo_next[0]
            _pseudo_next[0] += 1
            self._entries[pid] = _Entry(ProcInfo(pid, ppid, name, list(args), "shell"), on_signal)
            return pid

    def add_child(self, popen: subprocess.Popen, name: str, args: list[str], *, ppid: int) -> int:
        with self._lock:
            self._entries[popen.pid] = _Entry(
                ProcInfo(popen.pid, ppid, name, list(args), "child"), popen=popen
            )
        return popen.pid

    def remove(self, pid: int) -> None:
        with self._lock:
            self._entries.pop(pid, None)

    def get(self, pid: int) -> ProcInfo | None:
        with self._lock:
            entry = self._entries.get(pid)
            return entry.info if entry else None

    def list(self) -> list[ProcInfo]:
        with self._lock:
            return sorted((e.info for e in self._entries.values()), key=lambda i: i.pid)

    def pidof(self, name: str) -> list[int]:
        return [i.pid for i in self.list() if i.name == name]

    def kill(self, pid: int, sig: int = signal.SIGTERM) -> bool:
        """Signal one of this emulator's processes. False (ESRCH) for any other pid."""
        with self._lock:
            entry = self._entries.get(pid)
        if entry is None:
            return False
        if entry.popen is not None:
            if entry.popen.poll() is not None:  # exited: never signal a recycled pid
                self.remove(pid)
                return False
            if sig != 0:
                entry.popen.send_signal(sig)
            return True
        if (
            sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL, signal.SIGINT)
            and entry.on_signal
        ):
            entry.on_signal(sig)
        return True

    def shutdown(self, *, kill_children: bool = True) -> None:
        """Stop every shell; kill the launched processes too unless told otherwise."""
        for info in self.list():
            if info.kind == "shell" or kill_children:
                self.kill(info.pid, signal.SIGKILL if info.kind == "child" else signal.SIGHUP)
