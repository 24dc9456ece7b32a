"""The one interface every way of reaching a phone implements.

Two implementations: ``direct`` (adb-shell with our own TCP/USB transport, no other tool
needed) and ``server`` (Google's adb server through adbutils). Features (push-assets, chat,
bench) only ever see this interface.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from qwenchat.errors import DeviceCommandError, UsageError
from qwenchat.shellwords import quote

ProgressCallback = Callable[[int], None]  # called with the bytes sent since the last call


def push_source(local: Path, mtime: int | None) -> tuple[Path, int]:
    """The file to push and the mtime the phone should give it (the file's own unless set).

    Folders are refused: ADB pushes files one by one (adb-shell's folder push does not recurse).
    """
    local = Path(local)
    if local.is_dir():
        raise UsageError(f"{local} is a folder: push files one by one")
    return local, int(local.stat().st_mtime) if mtime is None else mtime


@contextmanager
def partial_file(local: Path) -> Iterator[Path]:
    """A hidden ``.NAME.part`` beside ``local`` to pull into, renamed into place only when the
    pull completed: an interrupted pull never leaves a file that looks whole."""
    local = Path(local)
    partial = local.with_name(f".{local.name}.part")
    try:
        yield partial
        os.replace(partial, local)
    finally:
        partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: bytes
    stderr: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def error_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class RemoteStat:
    mode: int
    size: int
    mtime: int

    @property
    def is_dir(self) -> bool:
        return (self.mode & 0o170000) == 0o040000


@dataclass
class ReadTimeouts:
    """Bounds on a stream's reads, in seconds (None: wait forever). ``first`` bounds the
    wait for the first byte; ``idle`` every later read, and the reader may change it between
    chunks (a model load is a long silence after the first lines, a stalled decode a short one).
    """

    first: float | None = None
    idle: float | None = None


@dataclass
class ShellStream(ABC):
    """A command running on the phone whose stdout arrives as it is produced.

    Iterate it for raw stdout chunks (bytes, split anywhere, even inside a UTF-8 character).
    After iteration ``exit_code`` is set when the transport reports one, and ``stderr``
    holds what the command wrote there (empty when the transport merges the two). A read
    that outlasts its bound raises DeviceTimeoutError.
    """

    exit_code: int | None = field(default=None, init=False)
    stderr: bytes = field(default=b"", init=False)
    timeouts: ReadTimeouts = field(default_factory=ReadTimeouts, init=False)

    def set_read_timeout(self, seconds: float | None) -> None:
        """The bound on the next read and the ones after it."""
        self.timeouts.idle = seconds

    @abstractmethod
    def __iter__(self) -> Iterator[bytes]: ...

    @abstractmethod
    def close(self) -> None:
        """Close the stream. On a phone this does NOT stop the process: kill it by pid."""

    def __enter__(self) -> ShellStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StdinCommand(ABC):
    """A command on the phone kept running and fed through its standard input (shell protocol
    v2's stdin frames), so one write is one packet on an open stream and its ack: no new shell
    per write. Its output is not read: only commands that print nothing belong here."""

    @abstractmethod
    def write(self, data: bytes, *, timeout: float = 10.0) -> None:
        """Hand ``data`` to the command's stdin; raises a DeviceError when the command has
        ended or the phone did not take the data within ``timeout``."""

    @abstractmethod
    def close(self) -> None:
        """End its input (the command sees EOF) and close the stream."""

    def __enter__(self) -> StdinCommand:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSender(ABC):
    """Small files to the phone over one sync stream kept open between them: each file is one
    round trip (SEND, DATA, DONE and the phone's answer) instead of an open, the file and a
    close. For files sent one after another on the way to a reply (a chat turn's prompt)."""

    @abstractmethod
    def send(self, data: bytes, remote: str, *, mode: int = 0o644) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FileSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PushEach(FileSender):
    """A push per file (transports without a kept sync stream)."""

    def __init__(self, device: Device) -> None:
        self._device = device

    def send(self, data: bytes, remote: str, *, mode: int = 0o644) -> None:
        self._device.push_bytes(data, remote, mode=mode)

    def close(self) -> None:
        pass


class Device(ABC):
    """One phone, reached one way."""

    serial: str
    transport_name: str  # "direct" or "server"
    # Whether a shell stream may run while a sync push is in flight on this same object
    # (push-assets then hashes file N on the phone while file N+1 is on the wire).
    concurrent_streams: bool = False

    @abstractmethod
    def shell(self, command: str, *, timeout: float | None = 60.0) -> ShellResult:
        """Run a command to completion; exit code and (where possible) separate stderr."""

    @abstractmethod
    def stream_shell(
        self,
        command: str,
        *,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> ShellStream:
        """Start a command and stream its stdout. A None timeout waits forever (a 7B model
        load is many seconds of silence); ``idle_timeout`` bounds each read after the first
        and can be changed with ``ShellStream.set_read_timeout``."""

    @property
    def has_shell_v2(self) -> bool:
        """Whether the phone's adbd speaks shell protocol v2 (exit codes, stderr, stdin)."""
        return False

    def open_stdin(self, command: str) -> StdinCommand:
        """Start ``command`` with its stdin kept open for ``StdinCommand.write``. Needs shell
        protocol v2 (a v1 shell's input goes through a terminal that echoes and edits it)."""
        raise DeviceCommandError(
            f"{self.serial} cannot feed a command's input (no shell protocol v2)"
        )

    @abstractmethod
    def push(
        self,
        local: Path,
        remote: str,
        *,
        mode: int = 0o644,
        mtime: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> None: ...

    @abstractmethod
    def push_bytes(self, data: bytes, remote: str, *, mode: int = 0o644) -> None: ...

    def file_sender(self) -> FileSender:
        """A FileSender; the default pushes each file on its own."""
        return _PushEach(self)

    @abstractmethod
    def pull(self, remote: str, local: Path) -> None: ...

    @abstractmethod
    def pull_bytes(self, remote: str) -> bytes: ...

    @abstractmethod
    def stat(self, remote: str) -> RemoteStat | None:
        """None when the path does not exist."""

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def side_channel(self) -> Iterator[Device]:
        """A way to reach the phone while another thread is reading a stream of this one
        (stopping a running process by pid). The default is this device itself; a transport
        that cannot safely carry two threads' traffic at once gives a connection of its own."""
        yield self

    @property
    def name(self) -> str:
        """What reports call this phone: its serial, or SERIAL@HOST:PORT when another
        computer's adb server holds it (two hosts may both have an ``emulator-5554``)."""
        return self.serial

    def getprop(self, name: str) -> str:
        return self.shell(f"getprop {quote(name)}").text.strip()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
