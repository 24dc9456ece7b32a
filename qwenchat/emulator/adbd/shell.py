"""The shell services: ``shell:`` (v1, stdout and stderr merged, no exit code),
``shell,v2,...:`` (framed: stdin 0, stdout 1, stderr 2, exit 3, close-stdin 4, window 5)
and ``exec:`` (raw bytes both ways, no frames)."""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

from qwenchat.emulator.adbd.stream import Stream, StreamClosed

FRAME = struct.Struct("<BI")
ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW = range(6)


@dataclass(frozen=True)
class ShellRequest:
    command: str | None  # None: an interactive shell reading commands from stdin
    v2: bool
    raw: bool


def parse_shell_service(service: str) -> ShellRequest | None:
    """``shell[,v2][,raw|,pty][,TERM=x]:cmd`` or ``exec:cmd``; None if neither."""
    if service.startswith("exec:"):
        return ShellRequest(command=service[5:] or None, v2=False, raw=True)
    head, sep, command = service.partition(":")
    if not sep:
        return None
    options = head.split(",")
    if options[0] != "shell":
        return None
    return ShellRequest(command=command or None, v2="v2" in options[1:], raw="pty" not in options)


class V2Decoder:
    """Shell v2 frames from a byte stream: a frame may span several WRTEs."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= FRAME.size:
            ident, length = FRAME.unpack_from(self._buf)
            if len(self._buf) < FRAME.size + length:
                break
            frames.append((ident, bytes(self._buf[FRAME.size : FRAME.size + length])))
            del self._buf[: FRAME.size + length]
        return frames


def frame(ident: int, payload: bytes) -> bytes:
    return FRAME.pack(ident, len(payload)) + payload


def run_shell(stream: Stream, request: ShellRequest) -> None:
    from qwenchat.emulator.phone import ShellSession

    conn = stream.conn
    phone = conn.ctx.phone

    def out(ident: int):
        def write(data: bytes) -> None:
            if not data:
                return
            try:
                stream.write(frame(ident, data) if request.v2 else data)
            except StreamClosed:
                pass  # the client went away; the hang-up reaches the session separately

        return write

    session = ShellSession(phone, request.command, stdout=out(ID_STDOUT), stderr=out(ID_STDERR))
    decoder = V2Decoder() if request.v2 else None

    def on_data(data: bytes) -> None:
        if decoder is None:
            session.feed_stdin(data)
            return
        for ident, payload in decoder.feed(data):
            if ident == ID_STDIN:
                session.feed_stdin(payload)
            elif ident == ID_CLOSE_STDIN:
                session.close_stdin()
            # ID_WINDOW: no terminal to resize in a raw shell

    hung_up = threading.Event()

    def on_close() -> None:
        hung_up.set()
        session.hangup()  # like SIGHUP when the client closes the stream

    stream.on_data = on_data
    stream.on_remote_close = on_close
    conn.okay_open(stream)
    code = session.run()
    if request.v2 and not hung_up.is_set():
        try:
            stream.write(frame(ID_EXIT, bytes([code & 0xFF])))
        except StreamClosed:
            pass
