"""The ``sync:`` service (push, pull, stat, ls), parsed as a byte stream: clients pack
several requests into one WRTE.

No path is resolved here. Every request goes to the phone's init (``Phone.stat``,
``Phone.open``, ...), which acts inside the sandbox as the phone's shell user, so the kernel
resolves the path in the phone's root with the phone's permissions. For a push the init
creates the file (parents first, adb's fixed_push_mkdir) and hands its descriptor back; the
data is written to that descriptor here at full speed, and the file is renamed into place
only when complete, so no partial file survives a failed push. A full /data fails the write
itself with ENOSPC ("No space left on device"). A pull reads the descriptor the init opened.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as st
import struct

from qwenchat.emulator.adbd.stream import Stream, StreamClosed
from qwenchat.emulator.phone import PhoneStat

log = logging.getLogger("qwenchat.emulator.adbd")

REQUEST = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
STAT_V2 = struct.Struct(
    "<4sIQQIIIIQqqq"
)  # id, errno, dev, ino, mode, nlink, uid, gid, size, a/m/ctime
DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")
MAX_PATH = 1024
SYNC_DATA_MAX = 64 * 1024
LOGGED = {b"SEND", b"RECV", b"STAT", b"STA2", b"LST2", b"LIST", b"LIS2"}


class SyncProtocolError(Exception):
    pass


def _v2_fields(s: PhoneStat) -> tuple:
    return (s.dev, s.ino, s.mode, s.nlink, s.uid, s.gid, s.size, s.atime, s.mtime, s.ctime)


def _why(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or errno.EIO)


class SyncService:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.ctx = stream.conn.ctx
        self.phone = self.ctx.phone

    def _fail(self, message: str) -> None:
        data = message.encode()
        self.stream.write(REQUEST.pack(b"FAIL", len(data)) + data)

    def run(self) -> None:
        self.stream.conn.okay_open(self.stream)
        try:
            while True:
                ident, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
                if ident == b"QUIT":
                    return
                if length > MAX_PATH:
                    raise SyncProtocolError(f"path of {length} bytes in {ident!r}")
                path = self.stream.read_exact(length).decode("utf-8", errors="surrogateescape")
                handler = {
                    b"STAT": self._stat_v1,
                    b"STA2": self._stat_v2,
                    b"LST2": self._lstat_v2,
                    b"LIST": self._list_v1,
                    b"LIS2": self._list_v2,
                    b"SEND": self._send,
                    b"RECV": self._recv,
                }.get(ident)
                if handler is None:
                    raise SyncProtocolError(f"unknown sync request {ident!r}")
                if ident in LOGGED:
                    what, mode = path, None
                    if ident == b"SEND" and "," in path:
                        what, _, mode = path.rpartition(",")
                    self.ctx.log.record(self.stream.conn.number, "sync", what,
                                        request=ident.decode(), mode=mode,
                                        stream=self.stream.local_id)  # fmt: skip
                if handler(path) is False:
                    return
        except StreamClosed:
            return
        except SyncProtocolError as exc:
            log.info("sync: %s", exc)
            try:
                self._fail(str(exc))
            except StreamClosed:
                pass

    # --- stat and list ------------------------------------------------------------------
    def _stat(self, path: str, follow: bool) -> PhoneStat | OSError:
        try:
            return self.phone.stat(path, follow=follow)
        except OSError as exc:
            return exc

    def _stat_v1(self, path: str) -> None:
        s = self._stat(path, follow=False)  # adbd's v1 STAT is an lstat
        if isinstance(s, OSError):
            self.stream.write(STAT_V1.pack(b"STAT", 0, 0, 0))
        else:
            self.stream.write(STAT_V1.pack(b"STAT", s.mode, s.size & 0xFFFFFFFF, s.mtime))

    def _stat2(self, ident: bytes, path: str, follow: bool) -> None:
        s = self._stat(path, follow)
        if isinstance(s, OSError):
            code = s.errno or errno.ENOENT
            self.stream.write(STAT_V2.pack(ident, code, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        else:
            self.stream.write(STAT_V2.pack(ident, 0, *_v2_fields(s)))

    def _stat_v2(self, path: str) -> None:
        self._stat2(b"STA2", path, follow=True)

    def _lstat_v2(self, path: str) -> None:
        self._stat2(b"LST2", path, follow=False)

    def _entries(self, path: str) -> list[tuple[str, PhoneStat]]:
        try:
            return self.phone.listdir(path)
        except OSError:
            return []

    def _list_v1(self, path: str) -> None:
        out = bytearray()
        for name, s in self._entries(path):
            raw = name.encode("utf-8", errors="surrogateescape")
            out += DENT_V1.pack(b"DENT", s.mode, s.size & 0xFFFFFFFF, s.mtime, len(raw))
            out += raw
        out += DENT_V1.pack(b"DONE", 0, 0, 0, 0)
        self.stream.write(bytes(out))

    def _list_v2(self, path: str) -> None:
        out = bytearray()
        for name, s in self._entries(path):
            raw = name.encode("utf-8", errors="surrogateescape")
            out += DENT_V2.pack(b"DNT2", 0, *_v2_fields(s), len(raw)) + raw
        out += DENT_V2.pack(b"DONE", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.stream.write(bytes(out))

    # --- push ---------------------------------------------------------------------------
    def _send(self, spec: str) -> bool:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            path, mode_text = spec, "0o100644"
        try:
            mode = int(mode_text)
        except ValueError:
            mode = 0o100644
        if st.S_ISLNK(mode):
            return self._send_symlink(path)
        try:
            fd, temp = self.phone.create_temp(path, mkdirs=True)
        except OSError as exc:
            self._drain_data()
            self._fail(f"couldn't create file: {_why(exc)}")
            return False
        return self._send_file(path, fd, temp, mode)

    def _drain_data(self) -> int | None:
        """Read DATA chunks up to DONE; returns DONE's mtime."""
        while True:
            ident, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if ident == b"DONE":
                return length
            if ident != b"DATA" or length > SYNC_DATA_MAX:
                raise SyncProtocolError(f"expected DATA or DONE, got {ident!r}")
            self.stream.read_into(length, lambda _piece: None)

    def _send_symlink(self, path: str) -> bool:
        target = bytearray()
        while True:
            ident, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if ident == b"DONE":
                break
            if ident != b"DATA" or length > SYNC_DATA_MAX:
                raise SyncProtocolError(f"expected DATA or DONE, got {ident!r}")
            target += self.stream.read_exact(length)
        try:
            text = target.rstrip(b"\0").decode("utf-8", errors="surrogateescape")
            self.phone.symlink(text, path, mkdirs=True)
        except OSError as exc:
            self._fail(f"symlink {path}: {_why(exc)}")
            return False
        self.stream.write(REQUEST.pack(b"OKAY", 0))
        return True

    def _send_file(self, path: str, fd: int, temp: str, mode: int) -> bool:
        failure: str | None = None

        def sink(piece: memoryview) -> None:
            nonlocal failure
            if failure is not None:
                return
            try:
                while piece:
                    piece = piece[os.write(fd, piece) :]
            except OSError as exc:
                failure = _why(exc)  # ENOSPC: "No space left on device", from the kernel

        mtime: int | None = None
        try:
            while True:
                ident, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
                if ident == b"DONE":
                    mtime = length
                    break
                if ident != b"DATA" or length > SYNC_DATA_MAX:
                    raise SyncProtocolError(f"expected DATA or DONE, got {ident!r}")
                self.stream.read_into(length, sink)
            if failure is None:
                try:
                    self._corrupt_if_asked(fd)
                    os.fchmod(fd, st.S_IMODE(mode) or 0o644)
                    os.utime(fd, (mtime, mtime))  # so `adb push --sync` can skip it next time
                except OSError as exc:
                    failure = _why(exc)
        finally:
            os.close(fd)
            if mtime is None or failure is not None:
                self._discard(temp)  # no partial file survives a failed push
        if failure is not None:
            self._fail(failure)
            return False
        try:
            self.phone.rename(temp, path)
        except OSError as exc:
            self._discard(temp)
            self._fail(f"{path}: {_why(exc)}")
            return False
        self.stream.write(REQUEST.pack(b"OKAY", 0))
        return True

    def _discard(self, temp: str) -> None:
        try:
            self.phone.unlink(temp)
        except OSError:
            pass

    def _corrupt_if_asked(self, fd: int) -> None:
        """Fault corrupt-bytes N: flip N bytes in the middle of this file (one file only)."""
        n = self.phone.take_corrupt_bytes()
        if not n:
            return
        size = os.fstat(fd).st_size
        start = max(0, size // 2 - n // 2)
        data = os.pread(fd, n, start)
        os.pwrite(fd, bytes(b ^ 0xFF for b in data), start)
        log.info("corrupt-bytes fault: flipped %d bytes at %d", len(data), start)

    # --- pull ---------------------------------------------------------------------------
    def _recv(self, path: str) -> bool:
        try:
            fd = self.phone.open(path, os.O_RDONLY)
        except OSError as exc:
            self._fail(_why(exc))
            return True
        try:
            if not st.S_ISREG(os.fstat(fd).st_mode):
                self._fail(os.strerror(errno.EISDIR) if st.S_ISDIR(os.fstat(fd).st_mode)
                           else "not a regular file")  # fmt: skip
                return True
            block = self.stream.conn.max_payload
            # Many 64 KiB DATA messages in one WRTE: fewer packets, same protocol.
            chunk = block - (block // SYNC_DATA_MAX + 1) * REQUEST.size
            while True:
                try:
                    data = os.read(fd, chunk)
                except OSError as exc:
                    self._fail(_why(exc))
                    return True
                if not data:
                    break
                out = bytearray()
                for start in range(0, len(data), SYNC_DATA_MAX):
                    piece = data[start : start + SYNC_DATA_MAX]
                    out += REQUEST.pack(b"DATA", len(piece))
                    out += piece
                self.stream.write(bytes(out))
        finally:
            os.close(fd)
        self.stream.write(REQUEST.pack(b"DONE", 0))
        return True


def run_sync(stream: Stream) -> None:
    SyncService(stream).run()
