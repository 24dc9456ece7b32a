"""One ADB stream: a service's bytes with ADB's flow control.

Outgoing: one WRTE in flight, the next waits for the peer's OKAY. Incoming: each WRTE is
answered with OKAY once the service has room (a bounded buffer, so a slow disk slows the
client instead of filling memory). Either side closing ends the stream; a CLSE is answered
with a CLSE.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenchat.emulator.adbd.connection import Connection

HIGH_WATER = 4 * 1024 * 1024


class StreamClosed(Exception):
    pass


class Stream:
    def __init__(self, conn: Connection, local_id: int, remote_id: int, service: str) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._cond = threading.Condition()
        self._inbuf = bytearray()
        self._okay_owed = False
        self._can_write = True  # the first WRTE needs no OKAY
        self._write_lock = threading.Lock()
        self.remote_closed = False
        self.local_closed = False
        self._reading_stopped = False
        self.on_remote_close: Callable[[], None] | None = None

    # --- called by the connection's reader thread ---------------------------------------
    def deliver(self, data: bytes) -> None:
        # The OKAY goes out BEFORE the service can see the data: otherwise its answer (a WRTE)
        # can overtake the OKAY, and adb-shell, waiting for OKAY on that stream, silently
        # drops the WRTE and then times out waiting for it. adbd orders them the same way.
        with self._cond:
            owe = len(self._inbuf) + len(data) > HIGH_WATER
            if owe:
                self._okay_owed = True
        if not owe:
            self.conn.send_okay(self)
        with self._cond:
            self._inbuf += data
            self._cond.notify_all()

    def peer_okay(self) -> None:
        with self._cond:
            self._can_write = True
            self._cond.notify_all()

    def peer_closed(self) -> None:
        with self._cond:
            already = self.remote_closed
            self.remote_closed = True
            self._cond.notify_all()
        if not already and self.on_remote_close is not None:
            self.on_remote_close()

    # --- called by the service thread ---------------------------------------------------
    def _pay_owed(self) -> bool:
        pay = self._okay_owed and len(self._inbuf) <= HIGH_WATER
        if pay:
            self._okay_owed = False
        return pay

    def read_some(self, limit: int = 1 << 20) -> bytes:
        """What has arrived (at least one byte), or StreamClosed if the stream ends first."""
        with self._cond:
            while not self._inbuf:
                if self.remote_closed or self.local_closed or self._reading_stopped:
                    raise StreamClosed()
                self._cond.wait()
            data = bytes(self._inbuf[:limit])
            del self._inbuf[:limit]
            pay = self._pay_owed()
        if pay:
            self.conn.send_okay(self)
        return data

    def stop_reading(self) -> None:
        """Wake a reader for good (the service is done with input) without closing."""
        with self._cond:
            self._reading_stopped = True
            self._cond.notify_all()

    def read_exact(self, n: int) -> bytes:
        """Exactly n bytes, or StreamClosed if the stream ends first."""
        with self._cond:
            while len(self._inbuf) < n:
                if self.remote_closed or self.local_closed:
                    raise StreamClosed()
                self._cond.wait()
            data = bytes(self._inbuf[:n])
            del self._inbuf[:n]
            pay = self._okay_owed and len(self._inbuf) <= HIGH_WATER
            if pay:
                self._okay_owed = False
        if pay:
            self.conn.send_okay(self)
        return data

    def read_into(self, n: int, sink: Callable[[memoryview], None]) -> None:
        """Hand n bytes to sink in the pieces already buffered (no extra joining copy)."""
        remaining = n
        while remaining:
            with self._cond:
                while not self._inbuf:
                    if self.remote_closed or self.local_closed:
                        raise StreamClosed()
                    self._cond.wait()
                take = min(remaining, len(self._inbuf))
                piece = bytes(self._inbuf[:take])
                del self._inbuf[:take]
                pay = self._okay_owed and len(self._inbuf) <= HIGH_WATER
                if pay:
                    self._okay_owed = False
            if pay:
                self.conn.send_okay(self)
            sink(memoryview(piece))
            remaining -= take

    def write(self, data: bytes) -> None:
        """Send data as WRTEs of at most the negotiated payload, stop-and-wait."""
        limit = self.conn.max_payload
        view = memoryview(data)
        with self._write_lock:
            for start in range(0, len(view), limit):
                with self._cond:
                    while not self._can_write:
                        if self.remote_closed or self.local_closed or self.conn.closed:
                            raise StreamClosed()
                        self._cond.wait(0.5)
                    if self.remote_closed or self.local_closed:
                        raise StreamClosed()
                    self._can_write = False
                self.conn.send_write(self, bytes(view[start : start + limit]))

    def close(self) -> None:
        """Close from the phone's side (CLSE), once."""
        with self._cond:
            if self.local_closed:
                return
            self.local_closed = True
            self._cond.notify_all()
        self.conn.close_stream(self)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
