"""Byte streams between the emulated shell's commands: in-memory pipes, sandbox files and
the session's callbacks. No host file descriptor ever reaches a command."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import IO, Protocol

PIPE_CAPACITY = 256 * 1024


class Hangup(Exception):
    """The shell got SIGHUP (or TERM/KILL): its builtin work stops here."""

    def __init__(self, sig: int = 1) -> None:
        super().__init__(f"signal {sig}")
        self.sig = sig


class Reader(Protocol):
    def read(self, n: int = -1) -> bytes: ...
    def close(self) -> None: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class Pipe:
    """A bounded in-memory pipe: writers block when it is full, readers when it is empty.
    Closing the read end makes writes fail with EPIPE (what SIGPIPE does to a writer)."""

    def __init__(
        self, capacity: int = PIPE_CAPACITY, cancel: threading.Event | None = None
    ) -> None:
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._capacity = capacity
        self._write_closed = False
        self._read_closed = False
        self._cancel = cancel

    def _cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def write(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        with self._cond:
            while view:
                if self._read_closed:
                    raise BrokenPipeError(errno.EPIPE, "Broken pipe")
                if self._cancelled():
                    raise Hangup()
                room = self._capacity - len(self._buf)
                if room <= 0:
                    self._cond.wait(0.1)
                    continue
                self._buf += view[:room]
                view = view[room:]
                self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = []
            while chunk := self.read(self._capacity):
                parts.append(chunk)
            return b"".join(parts)
        with self._cond:
            while not self._buf and not self._write_closed:
                if self._cancelled():
                    raise Hangup()
                self._cond.wait(0.1)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            self._cond.notify_all()
            return data

    def close_write(self) -> None:
        with self._cond:
            self._write_closed = True
            self._cond.notify_all()

    def close_read(self) -> None:
        with self._cond:
            self._read_closed = True
            self._buf.clear()
            self._cond.notify_all()

    def reader(self) -> PipeReader:
        return PipeReader(self)

    def writer(self) -> PipeWriter:
        return PipeWriter(self)


class PipeReader:
    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def read(self, n: int = -1) -> bytes:
        return self.pipe.read(n)

    def close(self) -> None:
        self.pipe.close_read()


class PipeWriter:
    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def write(self, data: bytes) -> None:
        self.pipe.write(data)

    def close(self) -> None:
        self.pipe.close_write()


class BytesReader:
    def __init__(self, data: bytes = b"") -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        pass


class HostFileReader:
    """A sandbox file opened by the interpreter (the path was resolved by the Sandbox)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def close(self) -> None:
        self._fh.close()


class NullWriter:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class CollectWriter:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))

    def close(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


class CallbackWriter:
    """The session's stdout/stderr callback. After hangup the stream is gone: writes are
    dropped and the writing builtin is stopped (a launched child's output is just dropped)."""

    def __init__(
        self, callback: Callable[[bytes], None], lock: threading.Lock, hup: threading.Event
    ) -> None:
        self._callback = callback
        self._lock = lock
        self._hup = hup
        self.detached = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._hup.is_set() or self.detached:
            raise Hangup()
        with self._lock:
            self._callback(bytes(data))

    def close(self) -> None:
        pass


class QuotaFileWriter:
    """Writes into a sandbox file while keeping /data's free space honest: each write is
    checked against ``free_bytes()`` first and reported through ``note_written``."""

    def __init__(self, fh: IO[bytes], phone, display: str) -> None:
        self._fh = fh
        self._phone = phone
        self.display = display

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._phone.free_bytes() < len(data):
            raise OSError(errno.ENOSPC, "No space left on device", self.display)
        self._fh.write(data)
        self._fh.flush()
        self._phone.note_written(len(data))

    def close(self) -> None:
        self._fh.close()
