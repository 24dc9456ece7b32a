"""The ``sync:`` service (push, pull, stat, ls), parsed as a byte stream: clients pack
several requests into one WRTE. Every path goes through the phone's sandbox."""

from __future__ import annotations

import errno
import io
import logging
import os
import stat as st
import struct
from pathlib import Path

from qwenchat.emulator.adbd.stream import Stream, StreamClosed
from qwenchat.emulator.fs import SandboxError

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
NO_SPACE = "No space left on device"


class SyncProtocolError(Exception):
    pass


def _v2_fields(s: os.stat_result) -> tuple:
    return (
        s.st_dev, s.st_ino, s.st_mode, s.st_nlink, 0, 0, s.st_size,
        int(s.st_atime), int(s.st_mtime), int(s.st_ctime),
    )  # fmt: skip


class SyncService:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.phone = stream.conn.ctx.phone

    def _host(self, path: str, *, follow: bool = True) -> Path:
        return self.phone.sandbox.to_host(path, "/", follow_last=follow)

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
    def _lstat(self, path: str, follow: bool) -> os.stat_result | OSError:
        try:
            host = self._host(path, follow=follow)
            return os.stat(host) if follow else os.lstat(host)
        except OSError as exc:
            return exc

    def _stat_v1(self, path: str) -> None:
        s = self._lstat(path, follow=False)  # adbd's v1 STAT is an lstat
        if isinstance(s, OSError):
            self.stream.write(STAT_V1.pack(b"STAT", 0, 0, 0))
        else:
            self.stream.write(
                STAT_V1.pack(b"STAT", s.st_mode, s.st_size & 0xFFFFFFFF, int(s.st_mtime))
            )

    def _stat2(self, ident: bytes, path: str, follow: bool) -> None:
        s = self._lstat(path, follow)
        if isinstance(s, OSError):
            code = s.errno or errno.ENOENT
            self.stream.write(STAT_V2.pack(ident, code, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        else:
            self.stream.write(STAT_V2.pack(ident, 0, *_v2_fields(s)))

    def _stat_v2(self, path: str) -> None:
        self._stat2(b"STA2", path, follow=True)

    def _lstat_v2(self, path: str) -> None:
        self._stat2(b"LST2", path, follow=False)

    def _entries(self, path: str) -> list[tuple[str, os.stat_result]]:
        try:
            host = self._host(path)
            names = [".", ".."] + sorted(os.listdir(host))
        except (OSError, SandboxError):
            return []
        entries = []
        for name in names:
            try:
                entries.append((name, os.lstat(host / name if name not in (".", "..") else host)))
            except OSError:
                continue
        return entries

    def _list_v1(self, path: str) -> None:
        out = bytearray()
        for name, s in self._entries(path):
            raw = name.encode("utf-8", errors="surrogateescape")
            out += DENT_V1.pack(
                b"DENT", s.st_mode, s.st_size & 0xFFFFFFFF, int(s.st_mtime), len(raw)
            )
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
        try:
            host = self._host(path, follow=False)
            if not self._writable(host):
                raise PermissionError(errno.EACCES, "Permission denied")
            host.parent.mkdir(parents=True, exist_ok=True)  # fixed_push_mkdir
        except OSError as exc:
            self._drain_data()
            self._fail(f"couldn't create file: {exc.strerror or exc}")
            return False
        if st.S_ISLNK(mode):
            return self._send_symlink(path, host)
        return self._send_file(path, host, mode)

    def _writable(self, host: Path) -> bool:
        """The phone's own rule for the shell user (e.g. /system is read-only)."""
        writable = getattr(self.phone, "writable", None)
        if writable is None:
            return True
        emulated = "/" + host.relative_to(self.phone.sandbox.fs_root).as_posix()
        return writable(emulated.rstrip("/.") or "/")

    def _drain_data(self) -> int | None:
        """Read DATA chunks up to DONE; returns DONE's mtime (None if the stream broke)."""
        while True:
            ident, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if ident == b"DONE":
                return length
            if ident != b"DATA" or length > SYNC_DATA_MAX:
                raise SyncProtocolError(f"expected DATA or DONE, got {ident!r}")
            self.stream.read_into(length, lambda _piece: None)

    def _send_symlink(self, path: str, host: Path) -> bool:
        target = bytearray()
        while True:
            ident, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if ident == b"DONE":
                break
            if ident != b"DATA" or length > SYNC_DATA_MAX:
                raise SyncProtocolError(f"expected DATA or DONE, got {ident!r}")
            target += self.stream.read_exact(length)
        try:
            if host.is_symlink() or host.is_file():
                host.unlink()
            # The link text is kept as is: the sandbox re-reads it inside the phone's "/".
            os.symlink(target.rstrip(b"\0").decode("utf-8", errors="surrogateescape"), host)
        except OSError as exc:
            self._fail(f"symlink {path}: {exc.strerror or exc}")
            return False
        self.stream.write(REQUEST.pack(b"OKAY", 0))
        return True

    def _send_file(self, path: str, host: Path, mode: int) -> bool:
        old_size = host.stat().st_size if host.is_file() and not host.is_symlink() else 0
        # Space is checked once per file (walking the sandbox per chunk would be slow):
        # the old file's bytes come back when it is replaced.
        budget = self.phone.free_bytes() + old_size
        tmp = host.with_name(f".{host.name}.adbd-partial")
        written = 0
        failure: str | None = None
        f = None
        try:
            f = open(tmp, "wb")
        except OSError as exc:
            failure = f"{path}: {exc.strerror or exc}"

        def sink(piece: memoryview) -> None:
            nonlocal written, failure
            if failure is not None:
                return
            if written + len(piece) > budget:
                failure = NO_SPACE
                return
            try:
                f.write(piece)
            except OSError as exc:
                failure = exc.strerror or str(exc)
                return
            written += len(piece)

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
        finally:
            if f is not None:
                f.close()
            if mtime is None or failure is not None:
                tmp.unlink(missing_ok=True)  # no partial file survives a failed push
        if failure is not None:
            self._fail(failure)
            return False
        try:
            os.chmod(tmp, st.S_IMODE(mode) or 0o644)
            os.utime(tmp, (mtime, mtime))  # so `adb push --sync` can skip it next time
            os.replace(tmp, host)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._fail(f"{path}: {exc.strerror or exc}")
            return False
        self.phone.note_written(written - old_size)
        self.stream.write(REQUEST.pack(b"OKAY", 0))
        return True

    # --- pull ---------------------------------------------------------------------------
    def _recv(self, path: str) -> bool:
        try:
            host = self._host(path)
            virtual = getattr(self.phone, "virtual_file", None)
            emulated = "/" + host.relative_to(self.phone.sandbox.fs_root).as_posix()
            content = virtual(emulated) if virtual is not None else None
            if content is not None:  # /proc, /sys: computed on read, as on a phone
                f = io.BytesIO(content)
            else:
                f = open(host, "rb")
        except (OSError, SandboxError, ValueError) as exc:
            self._fail(f"{getattr(exc, 'strerror', None) or exc}")
            return True
        block = self.stream.conn.max_payload
        with f:
            while True:
                # Many 64 KiB DATA messages in one WRTE: fewer packets, same protocol.
                data = f.read(block - (block // SYNC_DATA_MAX + 1) * REQUEST.size)
                if not data:
                    break
                out = bytearray()
                for start in range(0, len(data), SYNC_DATA_MAX):
                    piece = data[start : start + SYNC_DATA_MAX]
                    out += REQUEST.pack(b"DATA", len(piece))
                    out += piece
                self.stream.write(bytes(out))
        self.stream.write(REQUEST.pack(b"DONE", 0))
        return True


def run_sync(stream: Stream) -> None:
    SyncService(stream).run()
