"""Our own byte movers for adb-shell, plugged in at its ``BaseTransport`` seam.

adb-shell's ``TcpTransport`` has two faults we cannot live with:

* ``bulk_write`` does one ``send()`` on a non-blocking socket and ignores short writes, so a
  large WRTE (a push packs up to 1 MiB into one) desynchronises the stream;
* no ``TCP_NODELAY``: every small request waits ~40 ms on Nagle + delayed ACK.

``TcpTransport`` here uses ``sendall``, sets ``TCP_NODELAY``, re-arms ``TCP_QUICKACK`` after
every read (Linux clears it again by itself), treats a peer that hangs up as an error instead
of busy-looping on empty reads, and honours ``None`` as "wait as long as it takes".

adb-shell also hides the device's CNXN banner, which is the only place the phone lists its
``features=`` (``shell_v2`` …). ``BannerSniffer`` watches the bytes read until the CNXN packet
has gone by and keeps its payload, for TCP and USB alike.
"""

from __future__ import annotations

import select
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from adb_shell.exceptions import TcpTimeoutException
from adb_shell.transport.base_transport import BaseTransport

_HEADER = struct.Struct("<6I")
_CNXN = 0x4E584E43
_AUTH = 0x48545541


class TransportClosedError(ConnectionError):
    """The phone (or the link) closed the connection."""


class NotAdbError(ConnectionError):
    """The other end answered, but not in ADB (an HTTP server, an SSH daemon...)."""

    def __init__(self, first_bytes: bytes) -> None:
        self.first_bytes = first_bytes
        shown = first_bytes.decode("ascii", errors="replace").split("\n")[0].strip()
        super().__init__(f"not an ADB packet: {shown!r}")

    @property
    def shown(self) -> str:
        text = self.first_bytes.decode("ascii", errors="replace")
        return "".join(c if c.isprintable() else " " for c in text.split("\n")[0])[:40].strip()


@dataclass
class Banner:
    """What the phone said about itself in its CNXN packet."""

    raw: str = ""
    state: str = ""  # "device", "recovery", "sideload"...
    props: dict[str, str] = field(default_factory=dict)
    features: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, payload: bytes) -> Banner:
        raw = payload.rstrip(b"\0").decode("utf-8", errors="replace")
        state, _, rest = raw.partition("::")
        props: dict[str, str] = {}
        features: frozenset[str] = frozenset()
        for item in rest.split(";"):
            key, sep, value = item.partition("=")
            if not sep:
                continue
            if key == "features":
                features = frozenset(f for f in value.split(",") if f)
            else:
                props[key] = value
        return cls(raw=raw, state=state, props=props, features=features)


class BannerSniffer:
    """Mix-in: remembers the CNXN payload among the first packets a transport reads."""

    banner: Banner | None = None
    _sniff: bytearray | None = None

    def _start_sniffing(self) -> None:
        self.banner = None
        self._sniff = bytearray()

    def _sniffed(self, data: bytes) -> None:
        if self._sniff is None or not data:
            return
        self._sniff += data
        # adb-shell reads exactly a header, then exactly its payload: the buffer holds whole
        # packets back to back, AUTH challenges first, then the CNXN we want.
        while len(self._sniff) >= _HEADER.size:
            command, _a0, _a1, length, _check, magic = _HEADER.unpack_from(self._sniff)
            if magic != command ^ 0xFFFFFFFF:
                # Every ADB packet carries its command's complement: this is another
                # protocol. Say so now rather than wait out the handshake timeout.
                raise NotAdbError(bytes(self._sniff[:64]))
            if len(self._sniff) < _HEADER.size + length:
                return
            payload = bytes(self._sniff[_HEADER.size : _HEADER.size + length])
            del self._sniff[: _HEADER.size + length]
            if command == _CNXN:
                self.banner = Banner.parse(payload)
                self._sniff = None
                return
            if command != _AUTH:  # anything else: the handshake is over, stop looking
                self._sniff = None
                return


class TcpTransport(BannerSniffer, BaseTransport):
    """A TCP link to a phone in ``adb tcpip`` mode or to the emulated phone."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None

    def connect(self, transport_timeout_s: float | None) -> None:
        self.close()
        timeout = transport_timeout_s if transport_timeout_s else self.connect_timeout
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._quickack()
        self._start_sniffing()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _quickack(self) -> None:
        # Linux only; elsewhere TCP_NODELAY alone already removes most of the stall.
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None and self._sock is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            except OSError:
                pass

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise TransportClosedError(f"not connected to {self.host}:{self.port}")
        return self._sock

    def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
        sock = self._require()
        sock.settimeout(transport_timeout_s)  # None: block as long as the phone is silent
        try:
            data = sock.recv(numbytes)
        except TimeoutError as exc:
            raise TcpTimeoutException(
                f"reading from {self.host}:{self.port} timed out ({transport_timeout_s} s)"
            ) from exc
        except OSError as exc:
            raise TransportClosedError(f"{self.host}:{self.port}: {exc}") from exc
        if not data:
            raise TransportClosedError(f"{self.host}:{self.port} closed the connection")
        self._quickack()
        self._sniffed(data)
        return data

    def wait_readable(self, timeout: float | None) -> bool:
        """Whether bytes (or EOF) are waiting, after up to ``timeout`` s (None: forever)."""
        sock = self._require()
        readable, _, _ = select.select([sock], [], [], timeout)
        return bool(readable)

    def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
        sock = self._require()
        sock.settimeout(transport_timeout_s)
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            raise TcpTimeoutException(
                f"writing to {self.host}:{self.port} timed out ({transport_timeout_s} s)"
            ) from exc
        except OSError as exc:
            raise TransportClosedError(f"{self.host}:{self.port}: {exc}") from exc
        return len(data)


def usb_transport_class() -> Any:  # adb-shell's class: the library ships no types
    """adb-shell's USB transport with banner sniffing (imports libusb1 lazily)."""
    from adb_shell.transport.usb_transport import UsbTransport

    class SniffingUsbTransport(BannerSniffer, UsbTransport):  # type: ignore[misc]
        def connect(self, transport_timeout_s=None):  # noqa: ANN001
            super().connect(transport_timeout_s)
            self._start_sniffing()

        def bulk_read(self, numbytes, transport_timeout_s=None):  # noqa: ANN001
            data = super().bulk_read(numbytes, transport_timeout_s)
            self._sniffed(bytes(data))
            return data

    return SniffingUsbTransport


def install_fast_checksum() -> bool:
    """Make adb-shell's packet checksum fast (numpy), same result; False if numpy is missing.

    adb-shell sums every payload byte by byte in Python, on send and on receive: with the
    link fixed that sum is ~60% of a push's host time (0.36 s of 0.59 s for 32 MiB). The
    protocol needs the sum (adb-shell offers version 0x01000000), so we compute it faster.
    Patched where adb-shell looks it up: ``adb_message.checksum`` (outgoing packets) and the
    name ``adb_device`` imported (incoming ones).
    """
    import importlib.util

    # numpy itself is imported at the first large payload (a push or pull), not at connect:
    # its ~0.3 s import would be paid by every one-shot question, whose packets are small.
    if importlib.util.find_spec("numpy") is None:
        return False
    from adb_shell import adb_device, adb_message

    original = getattr(adb_message.checksum, "__wrapped__", adb_message.checksum)

    def checksum(data):  # noqa: ANN001, ANN202
        if isinstance(data, bytes | bytearray | memoryview) and len(data) >= 4096:
            import numpy

            total = int(numpy.frombuffer(data, dtype=numpy.uint8).sum(dtype=numpy.uint64))
            return total & 0xFFFFFFFF
        return original(data)

    checksum.__wrapped__ = original  # type: ignore[attr-defined]
    adb_message.checksum = checksum
    adb_device.checksum = checksum
    return True
