"""The two ways a phone reports a command's output, as one stream of (channel, bytes) events.

* shell protocol v2 (``shell,v2,raw:CMD``, feature ``shell_v2``): frames ``<B id><I len>`` +
  payload, 1 = stdout, 2 = stderr, 3 = exit code (one byte); a frame may span packets.
  The host sends 0 = stdin and 4 = close-stdin the same way.
* shell v1 (``shell:CMD``): stdout and stderr merged, no exit code. We append a marker that
  prints ``$?`` and strip it from the end of the output.

Both transports (direct and adb server) use these, so they decode identically.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator

from qwenchat.device.base import ReadTimeouts, ShellStream

STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN = 0, 1, 2, 3, 4
_V2_HEADER = struct.Struct("<BI")
_RC_MARKER = re.compile(rb"\n__qwenchat_rc=(\d+)\n\Z")
_RC_HOLDBACK = 32  # longer than any marker: held back while streaming v1 output

Event = tuple[int, bytes]


def v2_service(command: str) -> bytes:
    return b"shell,v2,raw:" + command.encode()


def v1_service(command: str) -> bytes:
    # A subshell, so `exit 3` in the command still reaches the printf.
    return f"shell:( {command}\n); printf '\\n__qwenchat_rc=%d\\n' \"$?\"".encode()


def v2_stdin_frames(data: bytes, max_packet: int) -> list[bytes]:
    """``data`` as stdin frames, each (header included) at most ``max_packet`` bytes."""
    step = max_packet - _V2_HEADER.size
    if step <= 0:
        raise ValueError(f"a packet of {max_packet} bytes cannot carry a stdin frame")
    return [
        _V2_HEADER.pack(STDIN, len(piece)) + piece
        for piece in (data[i : i + step] for i in range(0, len(data), step))
    ]


def v2_close_stdin_frame() -> bytes:
    return _V2_HEADER.pack(CLOSE_STDIN, 0)


def v2_events(payloads: Iterable[bytes]) -> Iterator[Event]:
    buf = bytearray()
    for data in payloads:
        buf += data
        while len(buf) >= _V2_HEADER.size:
            channel, length = _V2_HEADER.unpack_from(buf)
            end = _V2_HEADER.size + length
            if len(buf) < end:
                break
            payload = bytes(buf[_V2_HEADER.size : end])
            del buf[:end]
            yield channel, payload


def v1_events(payloads: Iterable[bytes]) -> Iterator[Event]:
    pending = bytearray()
    for data in payloads:
        pending += data
        if len(pending) > _RC_HOLDBACK:
            cut = len(pending) - _RC_HOLDBACK
            yield STDOUT, bytes(pending[:cut])
            del pending[:cut]
    match = _RC_MARKER.search(bytes(pending))
    if match:
        yield STDOUT, bytes(pending[: match.start()])
        yield EXIT, bytes([int(match.group(1)) & 0xFF])
    else:
        yield STDOUT, bytes(pending)


class EventShellStream(ShellStream):
    """A ShellStream over (channel, bytes) events: stdout chunks raw, stderr and exit kept."""

    def __init__(
        self,
        events: Iterator[Event],
        on_close: Callable[[bool], None] | None = None,
        timeouts: ReadTimeouts | None = None,
    ):
        self.exit_code = None
        self.stderr = b""
        self.timeouts = timeouts or ReadTimeouts()
        self._events = events
        self._on_close = on_close
        self._finished = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for channel, payload in self._events:
            if channel == STDOUT:
                if payload:
                    yield payload
            elif channel == STDERR:
                self.stderr += payload
            elif channel == EXIT:
                self.exit_code = payload[0] if payload else None
        self._finished = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._finished:
            self._events.close()  # type: ignore[attr-defined]
        if self._on_close is not None:
            self._on_close(self._finished)  # finished: the phone already closed it
