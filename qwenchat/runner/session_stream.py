"""Cutting genie-app's one long stdout into turns.

genie-app echoes every script line before it runs it (``> `` + the line), and a query prints
what genie-t2t-run prints (``[PROMPT]: `` + the prompt, ``[BEGIN]: `` + reply + ``[END]``). The
session writes a query's line together with the lines that follow it, so the reply is over
exactly when the echo of the next line appears. That echo holds a path made for this turn
(``session-<id>-<n>.json``), which a model's reply does not produce by chance: no look-ahead
heuristic is needed, unlike the end of a genie-t2t-run's output (``genie/stream.py``).

The bytes before the echo go through the same ``GenieStreamParser`` as a per-query run, so
reply text, [END]/[ABORT], overflow reports and the prompt echo (skipped by length) are read
one way for both engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qwenchat.genie import stream as ev

ECHO_PREFIX = b"> "
_VERSION_RE = re.compile(rb"libGenie\.so = (\S+)\r?\n")
_PID_RE = re.compile(rb"genie-app pid: (\d+)\r?\n")


def echo_of(line: str) -> bytes:
    """What genie-app prints when it reads ``line`` (our words never need its quoting)."""
    return ECHO_PREFIX + line.encode() + b"\n"


@dataclass
class Segment:
    """Bytes of stdout up to (not including) a marker, kept whole until the marker shows."""

    marker: bytes
    found: bool = False
    before: bytes = b""
    after: bytes = b""  # bytes that came with the marker's chunk, past it

    def feed(self, buf: bytes) -> bytes:
        """Add ``buf``; returns the bytes that are now certainly before the marker (to be
        parsed at once: a reply must stream, not wait for its end)."""
        data = self.before + buf
        at = data.find(self.marker)
        if at >= 0:
            self.found = True
            self.before = b""
            self.after = data[at + len(self.marker) :]
            return data[:at]
        keep = min(len(data), len(self.marker) - 1)
        # Hold back only what could be the start of the marker.
        while keep and not self.marker.startswith(data[len(data) - keep :]):
            keep -= 1
        self.before = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]


@dataclass
class TurnReader:
    """One query's stdout: reply events as they come, done once ``marker`` (the echo of the
    line after the query) has been seen."""

    prompt: str
    marker: bytes
    parser: ev.GenieStreamParser = field(init=False)
    segment: Segment = field(init=False)

    def __post_init__(self) -> None:
        self.parser = ev.GenieStreamParser(self.prompt)
        self.segment = Segment(self.marker)

    @property
    def done(self) -> bool:
        return self.segment.found

    @property
    def rest(self) -> bytes:
        return self.segment.after

    def feed(self, chunk: bytes) -> list[ev.StreamEvent]:
        events = self.parser.feed(self.segment.feed(chunk))
        if self.segment.found:
            events += self.parser.finish()
        return events

    def finish(self) -> list[ev.StreamEvent]:
        """The stream ended before the marker (genie-app died): what is left."""
        events = self.parser.feed(self.segment.before)
        self.segment.before = b""
        return events + self.parser.finish()


@dataclass
class VersionReply:
    """``version``'s answer after its echo: ``genie-app pid: N`` and ``libGenie.so = X``."""

    buf: bytes = b""
    pid: int | None = None
    version: str | None = None

    def feed(self, chunk: bytes) -> bool:
        """True once the version line came (it is the last of the two)."""
        self.buf += chunk
        if self.pid is None and (m := _PID_RE.search(self.buf)) is not None:
            self.pid = int(m.group(1))
        m = _VERSION_RE.search(self.buf)
        if m is not None:
            self.version = m.group(1).decode("utf-8", errors="replace")
            return True
        return False

    @property
    def rest(self) -> bytes:
        m = _VERSION_RE.search(self.buf)
        return b"" if m is None else self.buf[m.end() :]


@dataclass
class Cutter:
    """Removes every ``pattern`` from a byte stream however it is chunked (a partial match
    at a chunk's end is held back until the next one decides)."""

    pattern: bytes
    held: bytes = b""

    def feed(self, chunk: bytes) -> bytes:
        data = (self.held + chunk).replace(self.pattern, b"")
        keep = min(len(data), len(self.pattern) - 1)
        while keep and not self.pattern.startswith(data[len(data) - keep :]):
            keep -= 1
        self.held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]

    def flush(self) -> bytes:
        held, self.held = self.held, b""
        return held
