"""Names of one live Genie session's files on the phone, and who owns a session.

A session (genie-app fed through a FIFO, ``session.py``) keeps, under the layout's tmp dir::

    session-<id>.fifo        the script genie-app reads, line by line, for the whole chat
    session-<id>.pid         "<pid> <owner>": how the next run (or `qwenchat clean`) finds it
    session-<id>.json        the dialog's genie_config.json
    session-<id>-<n>.txt     the prompt of query n (user text travels only as a file)
    session-<id>-<n>.json    Genie's profile saved after query n

The owner tag names the host process that started the session (host name, pid and that
process's start time, so a recycled pid is not taken for the owner): a run that finds a pid
file whose owner is gone from this host ends that genie-app (``sweep_stale``).

genie-app reads its script as words split on blanks, with no quoting we could rely on: every
word we write is checked to be a plain path or name (``script_word``).
"""

from __future__ import annotations

import os
import posixpath
import re
import socket
import uuid
from dataclasses import dataclass

from qwenchat.errors import UsageError

PREFIX = "session-"
OWNER_PREFIX = "qwenchat"
_WORD = re.compile(r"[A-Za-z0-9._/+:=@-]+\Z")


def script_word(word: str) -> str:
    """``word`` if genie-app reads it back as one word; UsageError otherwise (a work dir with
    blanks or shell characters cannot carry a session: the per-turn engine can)."""
    if not _WORD.match(word):
        raise UsageError(
            f"{word!r} cannot go into a genie-app script (only letters, digits and ._/+:=@-)",
            hint="Use a --device-dir without blanks or special characters, or --engine process.",
        )
    return word


@dataclass(frozen=True)
class SessionFiles:
    tmp_dir: str
    id: str

    @classmethod
    def new(cls, tmp_dir: str) -> SessionFiles:
        return cls(tmp_dir, uuid.uuid4().hex[:12])

    def _path(self, suffix: str) -> str:
        return posixpath.join(self.tmp_dir, f"{PREFIX}{self.id}{suffix}")

    @property
    def fifo(self) -> str:
        return self._path(".fifo")

    @property
    def pid_file(self) -> str:
        return self._path(".pid")

    @property
    def config(self) -> str:
        return self._path(".json")

    @property
    def pattern(self) -> str:
        """Every file of this session (a shell glob: quote the directory part only)."""
        return self._path("*")

    def prompt(self, n: int) -> str:
        return self._path(f"-{n}.txt")

    def profile(self, n: int) -> str:
        return self._path(f"-{n}.json")

    def sampler(self, n: int) -> str:
        """The sampler config a query applies to the live dialog (newer genie-app)."""
        return self._path(f"-{n}-sampler.json")


# ----- owners
def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux /proc), "" elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _host() -> str:
    name = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname() or "host")
    return name[:64] or "host"


def owner_tag(pid: int | None = None) -> str:
    """``qwenchat@HOST:PID:START`` for this process (or ``pid`` on this host)."""
    pid = os.getpid() if pid is None else pid
    return f"{OWNER_PREFIX}@{_host()}:{pid}:{_start_time(pid)}"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    @classmethod
    def parse(cls, tag: str) -> Owner | None:
        m = re.fullmatch(rf"{OWNER_PREFIX}@([A-Za-z0-9.-]+):(\d+):(\d*)", tag.strip())
        return None if m is None else cls(m.group(1), int(m.group(2)), m.group(3))

    @property
    def on_this_host(self) -> bool:
        return self.host == _host()

    def gone(self) -> bool:
        """Whether the owning host process has ended (only knowable on its own host)."""
        if not self.on_this_host:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        # Alive, but is it still the same process? A recycled pid has another start time.
        now = _start_time(self.pid)
        return bool(self.start and now and now != self.start)


@dataclass(frozen=True)
class PidFileEntry:
    """One line of ``session-*.pid`` as the phone listed it."""

    path: str
    pid: int
    owner: str

    @property
    def session_id(self) -> str:
        name = posixpath.basename(self.path)
        return name[len(PREFIX) : -len(".pid")]


def parse_pid_listing(text: str) -> list[PidFileEntry]:
    """Lines ``<path> <pid> <owner>`` (the sweep's listing); malformed ones are skipped."""
    entries = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].endswith(".pid") and words[1].isdigit():
            owner = words[2] if len(words) > 2 else ""
            entries.append(PidFileEntry(words[0], int(words[1]), owner))
    return entries
