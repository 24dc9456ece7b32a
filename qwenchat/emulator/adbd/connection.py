"""One client connection: the handshake, RSA auth, and the packet loop that feeds streams."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qwenchat.emulator.adbd import protocol as p
from qwenchat.emulator.adbd.auth import AdbPublicKey, KeyFormatError, KeyStore, parse_public_key
from qwenchat.emulator.adbd.link import Link
from qwenchat.emulator.adbd.stream import Stream

if TYPE_CHECKING:
    from qwenchat.emulator.commandlog import CommandLog
    from qwenchat.emulator.config import EmulatorConfig, LiveConfig
    from qwenchat.emulator.phone import Phone

log = logging.getLogger("qwenchat.emulator.adbd")

FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")
PENDING_POLL_S = 0.2  # how often an unauthorized connection looks for its key in adb_keys


@dataclass
class DeviceContext:
    """What every connection of one emulator shares."""

    config: EmulatorConfig
    live: LiveConfig  # the settings, with fault switches re-read when their file changes
    phone: Phone
    keys: KeyStore
    link: Link
    log: CommandLog
    # service name -> runs the service on the stream (in the stream's own thread)
    open_service: Callable[[DeviceContext, Stream], bool]
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_number(self) -> int:
        return next(self._numbers)


class ConnectionDropped(Exception):
    pass


class Connection:
    def __init__(self, sock: socket.socket, ctx: DeviceContext) -> None:
        self.sock = sock
        self.ctx = ctx
        self.number = ctx.next_number()  # names this connection in the command log
        self.version = p.VERSION_NO_CHECKSUM
        self.max_payload = p.MAX_PAYLOAD
        self.online = False  # CNXN sent: streams may be opened
        self.closed = False
        self.streams: dict[int, Stream] = {}
        self._next_id = 1
        self._send_lock = threading.Lock()
        self._streams_lock = threading.Lock()
        self._token = b""
        self._pending_key: AdbPublicKey | None = None
        self._received = 0  # payload bytes, for drop_after_bytes
        self._quickack = getattr(socket, "TCP_QUICKACK", None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- sending ----------------------------------------------------------------------
    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        raw = p.encode(command, arg0, arg1, data, with_checksum=self.version <= p.VERSION_CHECKSUM)
        self.ctx.link.to_host.consume(len(data))
        with self._send_lock:
            if self.closed:
                raise ConnectionDropped()
            try:
                self.sock.sendall(raw)
            except OSError as exc:
                self.shutdown()
                raise ConnectionDropped() from exc

    def send_okay(self, stream: Stream) -> None:
        try:
            self.send(p.OKAY, stream.local_id, stream.remote_id)
        except ConnectionDropped:
            pass

    def send_write(self, stream: Stream, data: bytes) -> None:
        from qwenchat.emulator.adbd.stream import StreamClosed

        try:
            self.send(p.WRTE, stream.local_id, stream.remote_id, data)
        except ConnectionDropped as exc:
            raise StreamClosed() from exc

    def close_stream(self, stream: Stream) -> None:
        with self._streams_lock:
            self.streams.pop(stream.local_id, None)
        try:
            self.send(p.CLSE, stream.local_id, stream.remote_id)
        except ConnectionDropped:
            pass

    def _send_cnxn(self) -> None:
        features = FEATURES if self.ctx.config.shell_v2 else tuple(
            f for f in FEATURES if f != "shell_v2"
        )
        banner = p.device_banner(self.ctx.phone.props(), features)
        self.online = True
        self.send(p.CNXN, self.version, self.max_payload, banner)

    # --- receiving --------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionDropped()
            got += k
            if self._quickack is not None:
                # Linux turns quick ACKs off again after a while: without re-arming, every
                # small request/answer stalls ~40 ms on delayed ACK + Nagle on the peer.
                try:
                    self.sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
                except OSError:
                    pass
        return bytes(buf)

    def _read_packet(self) -> p.Packet:
        command, arg0, arg1, length = p.decode_header(self._recv_exact(p.HEADER.size))
        data = self._recv_exact(length) if length else b""
        if length:
            self.ctx.link.to_phone.consume(length)
            self._received += length
            limit = self.ctx.live.refresh().drop_after_bytes
            if limit is not None and self._received >= limit:
                log.info("dropping the connection after %d bytes (drop_after_bytes)", limit)
                raise ConnectionDropped()
        return p.Packet(command, arg0, arg1, data)

    def serve(self) -> None:
        try:
            while not self.closed:
                self._handle(self._read_packet())
        except (ConnectionDropped, OSError, p.ProtocolError) as exc:
            log.debug("connection ends: %r", exc)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Close the socket and end every stream (their services see the hang-up)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self._streams_lock:
            streams = list(self.streams.values())
            self.streams.clear()
        for stream in streams:
            stream.peer_closed()

    # --- packets ----------------------------------------------------------------------
    def _handle(self, pkt: p.Packet) -> None:
        if pkt.command == p.CNXN:
            self._on_cnxn(pkt)
        elif pkt.command == p.AUTH:
            self._on_auth(pkt)
        elif not self.online:
            return  # adbd ignores stream traffic before the handshake
        elif pkt.command == p.OPEN:
            self._on_open(pkt)
        elif pkt.command in (p.WRTE, p.OKAY, p.CLSE):
            with self._streams_lock:
                stream = self.streams.get(pkt.arg1)
            if stream is None:
                if pkt.command == p.WRTE:  # a stream we closed: tell the peer again
                    self.send(p.CLSE, 0, pkt.arg0)
                return
            if pkt.command == p.WRTE:
                stream.deliver(pkt.data)
            elif pkt.command == p.OKAY:
                stream.peer_okay()
            else:
                with self._streams_lock:
                    self.streams.pop(stream.local_id, None)
                stream.peer_closed()
                if not stream.local_closed:
                    stream.local_closed = True
                    stream.wake()
                    # adb-shell waits 10 s for this answer otherwise
                    self.send(p.CLSE, stream.local_id, stream.remote_id)

    def _on_cnxn(self, pkt: p.Packet) -> None:
        self.version = min(pkt.arg0, p.VERSION_NO_CHECKSUM)
        self.max_payload = max(256, min(pkt.arg1, p.MAX_PAYLOAD))
        self.online = False
        if not self.ctx.config.auth:
            self._send_cnxn()
            return
        self._send_token()

    def _send_token(self) -> None:
        self._token = os.urandom(p.TOKEN_SIZE)
        self.send(p.AUTH, p.AUTH_TOKEN, 0, self._token)

    def _on_auth(self, pkt: p.Packet) -> None:
        if self.online or not self._token:
            return
        if pkt.arg0 == p.AUTH_SIGNATURE:
            for key in self.ctx.keys.authorized():
                if key.verify(self._token, pkt.data):
                    self._send_cnxn()
                    return
            self._send_token()  # ask again: the client tries its next key, then sends one
        elif pkt.arg0 == p.AUTH_RSAPUBLICKEY:
            try:
                key = parse_public_key(pkt.data)
            except KeyFormatError as exc:
                log.info("refusing a malformed public key: %s", exc)
                return
            if self.ctx.keys.is_authorized(key):
                self._send_cnxn()  # authorized meanwhile (authorize ran while we waited)
            elif self.ctx.config.accept_new_keys:
                self.ctx.keys.add_authorized(key)  # "always allow"
                self._send_cnxn()
            else:
                # The "Allow USB debugging?" dialog: stay unauthorized until `authorize`.
                self.ctx.keys.add_pending(key)
                self._pending_key = key
                threading.Thread(
                    target=self._wait_for_authorization, name="adbd-auth-wait", daemon=True
                ).start()

    def _wait_for_authorization(self) -> None:
        key = self._pending_key
        while not self.closed and not self.online and key is not None:
            if self.ctx.keys.is_authorized(key):
                try:
                    self._send_cnxn()
                except ConnectionDropped:
                    pass
                return
            time.sleep(PENDING_POLL_S)

    def _on_open(self, pkt: p.Packet) -> None:
        service = pkt.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            stream = Stream(self, local_id, pkt.arg0, service)
            self.streams[local_id] = stream
        threading.Thread(
            target=self._run_service, args=(stream,), name=f"adbd-{service[:20]}", daemon=True
        ).start()

    def _run_service(self, stream: Stream) -> None:
        try:
            accepted = self.ctx.open_service(self.ctx, stream)
        except Exception:  # a bug in a service must not take the connection down
            log.exception("service %r failed", stream.service)
            accepted = True
        if not accepted:  # unknown service: refuse the OPEN with a CLSE
            with self._streams_lock:
                self.streams.pop(stream.local_id, None)
            try:
                self.send(p.CLSE, 0, stream.remote_id)
            except ConnectionDropped:
                pass
            return
        stream.close()

    def okay_open(self, stream: Stream) -> None:
        """Accept an OPEN: services call this before their first write."""
        self.send(p.OKAY, stream.local_id, stream.remote_id)
