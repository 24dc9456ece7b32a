"""One push at a time per work dir: a lock on the phone with its owner and age.

Two pushes at once used to race (one removed the other's ``.partial``). Now a push that
changes anything holds ``<work>/.push-lock``, one line naming its owner::

    qwenchat-push-lock 1 token=<hex> host=<name> pid=<n> since=<phone epoch s>

Atomicity comes from ``mkdir``: every change to the lock (take, take over, release) and
every change a push makes to the work dir runs inside ONE shell command that first does
``mkdir <work>/.push-lock.guard`` (atomic: exactly one command gets it), then compares the
lock line, acts, and removes the guard. So taking a lock is never check-then-write: the check
and the write happen while no other push can act, and a push whose lock was taken over
cannot rename a single file afterwards (its commands find another line and stop).

The lock's mtime is the owner's heartbeat: each command it runs under the guard touches it.
A lock is stale, and the next push takes it over (saying so), when
- its owner ran on this computer and that process is gone, or was an earlier push of this
  same process; or
- another computer holds it and it shows no progress for ``STALE_AFTER_S`` (10 min: the
  longest a single multi-GB file should take on a slow link); or
- the lock line is unreadable and older than a minute.
``--break-lock`` takes over any lock. The guard itself is held for milliseconds; one older
than ``GUARD_STALE_S`` was left by a shell that died mid-command and is removed, but only if
its mtime is still the one judged stale (compared in the same command that removes it).
"""

from __future__ import annotations

import os
import posixpath
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qwenchat.device.base import ShellResult
from qwenchat.errors import DeviceCommandError, DeviceError, PhoneFullError, says_phone_full
from qwenchat.shellwords import quote

if TYPE_CHECKING:
    from qwenchat.layout import PhoneLayout

LOCK_NAME = ".push-lock"
GUARD_NAME = ".push-lock.guard"
LOCK_MAGIC = "qwenchat-push-lock 1"
STALE_AFTER_S = 600
ORPHAN_STALE_S = 60
GUARD_STALE_S = 30
GUARD_WAIT_S = 10.0  # how long a command waits for the guard before looking at its age

_EXIT_GUARD_BUSY = 75
_EXIT_LOCK_LOST = 76
_EXIT_NO_GUARD = 74
# Our own answers in the lock's scripts: parsed here, never shown to a user.
_MARKERS = re.compile(r"__[a-z_]+__")

# Tokens of the pushes running in this process: a lock naming this pid with another token
# was left by an earlier push of this process (Ctrl-C closed its connection before it
# could release), so it is stale although the pid is alive.
_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


class PushLockedError(DeviceError):
    """Another push holds the phone's work dir."""

    default_hint = (
        "Wait for it to finish. A lock whose process is gone (this computer) or that shows no "
        f"progress for {STALE_AFTER_S // 60} min is taken over by the next push; "
        "--break-lock takes it now."
    )


class PushLockLostError(DeviceError):
    """This push's lock was taken over by another push: it stopped changing the phone."""

    default_hint = "Run push-assets again once the other push is done."


def lock_paths(layout: PhoneLayout) -> tuple[str, str]:
    return (
        posixpath.join(layout.work_dir, LOCK_NAME),
        posixpath.join(layout.work_dir, GUARD_NAME),
    )


def this_host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:64] or "unknown-host"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


@dataclass
class LockOwner:
    token: str
    host: str
    pid: int
    since: int  # the phone's clock (date +%s) when the lock was taken

    def line(self) -> str:
        return (
            f"{LOCK_MAGIC} token={self.token} host={self.host} pid={self.pid} since={self.since}"
        )

    @classmethod
    def parse(cls, line: str) -> LockOwner | None:
        if not line.startswith(LOCK_MAGIC + " "):
            return None
        fields = dict(
            part.split("=", 1) for part in line[len(LOCK_MAGIC) + 1 :].split() if "=" in part
        )
        try:
            return cls(fields["token"], fields["host"], int(fields["pid"]), int(fields["since"]))
        except (KeyError, ValueError):
            return None


@dataclass
class LockInfo:
    """What the phone says about the lock (all times on the phone's clock)."""

    raw: str = ""
    mtime: int | None = None  # None: there is no lock file
    guard_mtime: int | None = None
    now: int | None = None
    owner: LockOwner | None = field(init=False)

    def __post_init__(self) -> None:
        self.owner = LockOwner.parse(self.raw)

    @property
    def present(self) -> bool:
        return self.mtime is not None

    @property
    def idle_s(self) -> int:
        """Seconds since the owner last showed progress."""
        if self.mtime is None or self.now is None:
            return 0
        return max(0, self.now - self.mtime)

    def mine(self) -> bool:
        with _ACTIVE_LOCK:
            return self.owner is not None and self.owner.token in _ACTIVE

    def stale_reason(self) -> str | None:
        """Why the lock may be taken over, or None while its owner may be at work."""
        if not self.present:
            return None
        owner = self.owner
        if owner is None:
            if self.idle_s >= ORPHAN_STALE_S:
                return f"an unreadable lock line, {self.idle_s} s old"
            return None
        if owner.host == this_host():
            if owner.pid == os.getpid():
                return None if self.mine() else "left by an earlier push of this process"
            if not pid_alive(owner.pid):
                return f"its process {owner.pid} on this computer is gone"
            return None  # alive here: never judged by age (--break-lock if it hangs)
        if self.idle_s >= STALE_AFTER_S:
            return f"no progress for {self.idle_s // 60} min"
        return None

    def describe(self) -> str:
        owner = self.owner
        if owner is None:
            return f"an unreadable lock ({self.raw[:60]!r})"
        where = "this computer" if owner.host == this_host() else f"host {owner.host}"
        text = f"{where}, pid {owner.pid}"
        if self.now is not None:
            age = max(0, self.now - owner.since)
            started = datetime.fromtimestamp(time.time() - age)
            text += f", since {started:%H:%M:%S} ({_ago(age)} ago"
            text += f"; last progress {_ago(self.idle_s)} ago)"
        return text


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def parse_lock_section(text: str) -> LockInfo:
    """Read what ``phone_state.lock_section_commands`` printed: L <line> M <mtime> G <mtime>
    N <now>, each value on the lines after its letter."""
    parts: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line in ("L", "M", "G", "N"):
            current = line
            parts.setdefault(current, [])
        elif current is not None:
            parts[current].append(line)

    def number(key: str) -> int | None:
        values = [v.strip() for v in parts.get(key, []) if v.strip()]
        return int(values[0]) if values and values[0].isdigit() else None

    raw = "\n".join(v for v in parts.get("L", []) if v.strip()).strip()
    return LockInfo(raw=raw, mtime=number("M"), guard_mtime=number("G"), now=number("N"))


class PhoneLock:
    """The lock one push holds; ``run`` executes a command only while it is still ours."""

    def __init__(self, device: Any, layout: PhoneLayout, *, break_lock: bool = False) -> None:
        self.device = device
        self.layout = layout
        self.break_lock = break_lock
        self.lock_path, self.guard_path = lock_paths(layout)
        self.owner = LockOwner(uuid.uuid4().hex, this_host(), os.getpid(), 0)
        self.held = False
        self.notes: list[str] = []

    # ---- taking it ----------------------------------------------------------------------

    def acquire(self, seen: LockInfo) -> None:
        """Take the lock; ``seen`` is what a state read just said about it."""
        deadline = time.monotonic() + GUARD_WAIT_S
        info = seen
        while True:
            expected = ""
            if info.present:
                reason = info.stale_reason()
                if reason is None and self.break_lock:
                    reason = "--break-lock"
                if reason is None:
                    raise PushLockedError(
                        f"another push is writing to {self.layout.work_dir} on this phone "
                        f"({info.describe()})"
                    )
                expected = info.raw
                took_over = f"took over the lock of {info.describe()}: {reason}"
            else:
                took_over = ""
            self.owner.since = info.now if info.now is not None else int(time.time())
            answer = self.device.shell(self._acquire_script(expected), timeout=30)
            out = answer.text
            if "__acquired__" in out:
                with _ACTIVE_LOCK:
                    _ACTIVE.add(self.owner.token)
                self.held = True
                if took_over:
                    self.notes.append(took_over)
                return
            if "__mkdir_failed__" in out or "__write_failed__" in out:
                raise self._cannot_write(None, answer.error_text + out)
            if "__held__" not in out and "__guard_busy__" not in out:
                raise DeviceCommandError(
                    "the phone's shell gave an unexpected answer while taking the push lock",
                    "Run `qwenchat doctor` to check the phone's shell.",
                )
            if "__guard_busy__" in out:
                self._wait_for_guard(deadline)
            info = self.read()

    def read(self) -> LockInfo:
        from qwenchat.assets.phone_state import lock_section_commands

        result = self.device.shell("; ".join(lock_section_commands(self.layout)), timeout=30)
        return parse_lock_section(result.text)

    def _acquire_script(self, expected: str) -> str:
        lock, guard = quote(self.lock_path), quote(self.guard_path)
        new = quote(self.lock_path + ".new")
        return (
            f"if e=$(mkdir {guard} 2>&1); then "
            f'cur=$(cat {lock} 2>/dev/null); if [ "$cur" = {quote(expected)} ]; then '
            f"echo {quote(self.owner.line())} > {new} && mv -f {new} {lock} "
            "&& echo __acquired__ || echo __write_failed__; "
            "else echo __held__; fi; "
            f"rmdir {guard}; "
            f"elif [ -d {guard} ]; then echo __guard_busy__; "
            'else echo __mkdir_failed__ "$e"; fi'
        )

    def _wait_for_guard(self, deadline: float) -> None:
        """The guard is busy: wait a little; one that stays busy past its age limit was left
        by a dead shell and is removed (only if its mtime is still the stale one)."""
        if time.monotonic() < deadline:
            time.sleep(0.05)
            return
        info = self.read()
        if info.guard_mtime is None or info.now is None:
            return
        if info.now - info.guard_mtime < GUARD_STALE_S:
            time.sleep(0.2)
            return
        guard = quote(self.guard_path)
        self.device.shell(
            f'[ "$(stat -c %Y {guard} 2>/dev/null)" = {info.guard_mtime} ] && rmdir {guard}',
            timeout=30,
        )
        self.notes.append(f"removed a lock guard left by a shell that died {info.now - info.guard_mtime} s ago")

    # ---- acting under it -----------------------------------------------------------------

    def script(self, body: str) -> str:
        """``body`` wrapped so it runs only while the lock is ours (and touches it)."""
        lock, guard = quote(self.lock_path), quote(self.guard_path)
        return (
            f"if e=$(mkdir {guard} 2>&1); then :; "
            f"elif [ -d {guard} ]; then echo __guard_busy__; exit {_EXIT_GUARD_BUSY}; "
            f'else echo __mkdir_failed__ "$e"; exit {_EXIT_NO_GUARD}; fi; '
            f'if [ "$(cat {lock} 2>/dev/null)" = {quote(self.owner.line())} ]; then '
            f"touch {lock}; {{ {body}; }}; s=$?; "
            f"else echo __lock_lost__; s={_EXIT_LOCK_LOST}; fi; "
            f"rmdir {guard}; exit $s"
        )

    def run(self, body: str, what: str, *, timeout: float = 60.0) -> ShellResult:
        """Run ``body`` under the lock; DeviceCommandError naming ``what`` when it fails."""
        deadline = time.monotonic() + GUARD_WAIT_S
        while True:
            result = self.device.shell(self.script(body), timeout=timeout)
            if result.exit_code == _EXIT_GUARD_BUSY and "__guard_busy__" in result.text:
                self._wait_for_guard(deadline)
                continue
            if result.exit_code == _EXIT_LOCK_LOST and "__lock_lost__" in result.text:
                self.held = False
                info = self.read()
                raise PushLockLostError(
                    f"stopped while {what}: another push took over the phone's lock "
                    f"({info.describe() if info.present else 'it is gone'})"
                )
            if result.exit_code == _EXIT_NO_GUARD and "__mkdir_failed__" in result.text:
                raise self._cannot_write(what, result.error_text + result.text)
            if not result.ok:
                if says_phone_full(result.error_text + result.text):
                    raise PhoneFullError(f"{what}: the phone's storage is full")
                detail = _words(result.error_text or result.text)
                raise DeviceCommandError(
                    f"{what} failed on the phone: {detail or f'exit code {result.exit_code}'}",
                    "Run `qwenchat doctor`; then push again (it resumes).",
                )
            return result

    def _cannot_write(self, what: str | None, output: str) -> DeviceError:
        """The lock (or its guard) cannot be created: a full phone, or a work dir that is
        gone or not writable. Said in the phone's words, never in the script's markers."""
        during = f"{what}: " if what else ""
        if says_phone_full(output):
            return PhoneFullError(
                f"{during}the phone's storage is full (cannot create the push lock in "
                f"{self.layout.work_dir})"
            )
        why = _words(output)
        return DeviceCommandError(
            f"{during}cannot create the push lock in {self.layout.work_dir} on the phone"
            + (f" ({why})" if why else ""),
            "Check that the work dir exists and is writable (`qwenchat doctor`).",
        )

    def release(self) -> None:
        """Give the lock back; best effort (the link may be gone: the next push from this
        computer then sees this process gone, or this push finished, and takes it over)."""
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self.owner.token)
        if not self.held:
            return
        self.held = False
        try:
            self.run(f"rm -f {quote(self.lock_path)}", "releasing the push lock", timeout=15)
        except (DeviceError, OSError):
            pass


def _words(output: str) -> str:
    """The phone's last line of output without our scripts' markers ('' if none is left)."""
    lines = [_MARKERS.sub("", line).strip() for line in output.strip().splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""
