"""Incremental parser of genie-t2t-run's stdout.

The format (QAIRT 2.40 ``genie-t2t-run`` source)::

    qwenchat-genie-pid: 1234             (printed by the shell before it execs Genie)
    genie-t2t-run pid: 1234              (Genie's own, with --pid)
    Using libGenie.so version 1.x.y
                                         (blank)
    [PROMPT]: <prompt, verbatim>\\n       (or "[PROMPT TOKENS]: 1 2 3 \\n" with -tok)
                                         (blank)
    [BEGIN]: <token><token>...[END]\\n

Reply text and markers share one byte stream and Genie escapes nothing, so:

- the prompt echo is skipped **by length** (we know the prompt we sent; it may contain
  anything, "[BEGIN]: " included);
- inside a reply, ``[END]\\n`` (or ``[ABORT]: ``) only ends it when what follows is the end
  of output, or a line Genie writes after a reply (``[KPIS]:``, the context-overflow
  report, "Query successfully aborted"), after optional blank space. Until that is known
  the candidate marker is held back, so a reply that itself contains "[END]\\n" is not cut.
  The decision only depends on the bytes, never on how they were chunked.

Text is emitted as soon as it cannot be part of a marker, and never splits a UTF-8
character (an incremental decoder keeps a partial one for the next chunk).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from qwenchat.genie.events import (
    Abort,
    Banner,
    Begin,
    Complete,
    ContextOverflow,
    End,
    Kpis,
    OtherLine,
    PidLine,
    PromptEcho,
    ReplyText,
    Resume,
    StreamEvent,
)

__all__ = [
    "Abort",
    "Banner",
    "Begin",
    "Complete",
    "ContextOverflow",
    "End",
    "GenieStreamParser",
    "Kpis",
    "OtherLine",
    "ParsedRun",
    "PidLine",
    "PromptEcho",
    "ReplyText",
    "Resume",
    "StreamEvent",
    "is_context_overflow",
    "parse_all",
]

PROMPT_MARK = b"[PROMPT]: "
PROMPT_TOKENS_MARK = b"[PROMPT TOKENS]: "
BEGIN_MARK = b"[BEGIN]: "
RESUME_MARK = b"[RESUME]: "
COMPLETE_MARK = b"[COMPLETE]: "
END_MARK = b"[END]\n"  # Genie writes "[END]" then std::endl
ABORT_MARK = b"[ABORT]: "
KPIS_MARK = b"[KPIS]:"

# Lines that start a line-oriented section at the start of a line outside a reply.
_LINE_START_MARKS = (PROMPT_MARK, PROMPT_TOKENS_MARK, BEGIN_MARK, RESUME_MARK, COMPLETE_MARK)

# What genie-t2t-run may write after the final [END]/[ABORT] (after optional blank space).
# The section that opens the reply, by its mark.
_SECTIONS: dict[bytes, type[Begin | Resume | Complete]] = {
    BEGIN_MARK: Begin,
    RESUME_MARK: Resume,
    COMPLETE_MARK: Complete,
}
_TRAILERS = (
    KPIS_MARK,
    b"Context Size was exceeded",
    b"Context Size was exhausted",
    b"Context limit exceeded",
    b"Query successfully aborted",
    b"Query Succesfully aborted",  # sic, genie-t2t-run's spelling on some paths
    b"Query successfully paused",
    b"Prompt processing: ",  # libGenie 1.0.0's figures, without a [KPIS]: header
    b"Note: The KPIS stdout",  # "...is deprecated" printed before [KPIS]: by some SDKs
)
_BLANK = b" \t\r\n"

_OVERFLOW_RE = re.compile(
    r"Context limit exceeded \(\s*\d+\s*\+\s*\d+\s*>\s*\d+\s*\)"
    r"|Context Size was exceeded\.?"
    r"|Context Size was exhausted\.?"
)
# Genie's own --pid line, or the line the shell prints before it execs Genie (command.py).
_PID_RE = re.compile(r"^(?:genie-t2t-run pid:|qwenchat-genie-pid:)\s*(\d+)\s*$")
SHELL_PID_MARKER = "qwenchat-genie-pid:"  # = genie.command.SHELL_PID_MARKER
_BANNER_RE = re.compile(r"^Using libGenie\.so version\s+(\S+)\s*$")
_KPI_INIT_RE = re.compile(r"Init Time:\s*(\d+)\s*us")
_KPI_PROMPT_RE = re.compile(
    r"Prompt Processing Time:\s*(\d+)\s*us,\s*Prompt Processing Rate\s*:\s*([\d.]+)\s*toks/sec"
)
_KPI_GEN_RE = re.compile(
    r"Token Generation Time:\s*(\d+)\s*us,\s*Token Generation Rate\s*:\s*([\d.]+)\s*toks/sec"
)
# The oldest form (libGenie 1.0.0, QNN 2.25; ai-hub-models#80): no "[KPIS]:" header, no init
# time and no prompt rate, after [END].
_KPI_OLD_PROMPT_RE = re.compile(r"^Prompt processing:\s*(\d+)\s*us\s*$")
_KPI_OLD_GEN_RE = re.compile(r"^Token generation:\s*(\d+)\s*us,\s*([\d.]+)\s*tokens/s\s*$")


def is_context_overflow(text: str) -> str | None:
    """The overflow report found in ``text`` (any of Genie's wordings), else None."""
    match = _OVERFLOW_RE.search(text)
    return match.group(0) if match else None


def _partial_suffix(data: bytes, marks: tuple[bytes, ...]) -> int:
    """Length of the longest suffix of ``data`` that is a proper prefix of one of ``marks``."""
    best = 0
    for mark in marks:
        for n in range(min(len(mark) - 1, len(data)), best, -1):
            if data.endswith(mark[:n]):
                best = n
                break
    return best


_HEADER, _ECHO, _ECHO_LINE, _REPLY, _AFTER = range(5)
_CONFIRMED, _REJECTED, _UNDECIDED = range(3)


class GenieStreamParser:
    """Feed stdout bytes as they arrive; get events back.

    ``prompt`` is the exact text written to the prompt file (its echo is skipped by its
    UTF-8 length). With ``prompt=None`` (a ``--tokens_file`` run, or unknown prompt) the
    echo is taken to end at the end of its line.
    """

    def __init__(self, prompt: str | None = None) -> None:
        self._prompt_len = len(prompt.encode("utf-8")) if prompt is not None else None
        self._state = _HEADER
        self._buf = b""
        self._echo_left = 0
        self._echo = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._terminal: bytes | None = None  # END_MARK/ABORT_MARK being held back
        self._kpis: dict[str, float | int] | None = None
        self._finished = False

    # ------------------------------------------------------------------ public API

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._buf += data
        out: list[StreamEvent] = []
        self._run(out, eof=False)
        return out

    def finish(self) -> list[StreamEvent]:
        """End of output: flush what was held back."""
        if self._finished:
            return []
        out: list[StreamEvent] = []
        self._run(out, eof=True)
        self._finished = True
        return out

    # ------------------------------------------------------------------- machinery

    def _run(self, out: list[StreamEvent], eof: bool) -> None:
        while True:
            before = (self._state, len(self._buf))
            if self._state in (_HEADER, _AFTER):
                self._lines(out, eof)
            elif self._state == _ECHO:
                self._skip_echo(out, eof)
            elif self._state == _ECHO_LINE:
                self._echo_to_eol(out, eof)
            elif self._state == _REPLY:
                self._reply(out, eof)
            if (self._state, len(self._buf)) == before:
                break
        if eof:
            self._flush_at_eof(out)

    def _flush_at_eof(self, out: list[StreamEvent]) -> None:
        if self._state == _REPLY:
            self._emit_text(out, self._buf, final=True)
        elif self._state in (_ECHO, _ECHO_LINE):
            out.append(PromptEcho(self._decode(self._echo + self._buf)))
        elif self._buf:
            self._line(out, self._buf)
        self._buf = b""
        self._flush_kpis(out)

    # -- line-oriented parts (before and after the reply)

    def _lines(self, out: list[StreamEvent], eof: bool) -> None:
        buf = self._buf
        if self._state == _HEADER:
            for mark in _LINE_START_MARKS:
                if buf.startswith(mark):
                    self._buf = buf[len(mark) :]
                    self._start_section(out, mark)
                    return
            # Wait while the line could still become one of the markers.
            if not eof and any(m.startswith(buf) for m in _LINE_START_MARKS) and b"\n" not in buf:
                return
        nl = buf.find(b"\n")
        if nl < 0:
            return  # an incomplete line: wait (finish() flushes it)
        self._buf = buf[nl + 1 :]
        self._line(out, buf[:nl])

    def _start_section(self, out: list[StreamEvent], mark: bytes) -> None:
        self._flush_kpis(out)
        if mark == PROMPT_MARK and self._prompt_len is not None:
            self._state, self._echo_left, self._echo = _ECHO, self._prompt_len, b""
        elif mark in (PROMPT_MARK, PROMPT_TOKENS_MARK):
            self._state, self._echo = _ECHO_LINE, b""
        else:
            out.append(_SECTIONS[mark]())
            self._state = _REPLY

    def _line(self, out: list[StreamEvent], raw: bytes) -> None:
        text = self._decode(raw).rstrip("\r")
        if not text.strip():
            return
        if self._kpis is not None:
            if self._kpi_line(text):
                if "generation_us" in self._kpis:
                    self._flush_kpis(out)
                return
            self._flush_kpis(out)
        if text.rstrip() == KPIS_MARK.decode():
            self._kpis = {}
            return
        if self._state == _AFTER and _KPI_OLD_PROMPT_RE.match(text):
            self._kpis = {}
            self._kpi_line(text)
            return
        if self._state == _HEADER and text.rstrip() == "[END]":
            # Genie may end a query that never began (a prompt that overflows the context).
            out.append(End())
            self._state = _AFTER
            return
        if (m := _PID_RE.match(text)) is not None:
            source = "shell" if text.startswith(SHELL_PID_MARKER) else "genie"
            out.append(PidLine(int(m.group(1)), source))
        elif (m := _BANNER_RE.match(text)) is not None:
            out.append(Banner(m.group(1)))
        elif is_context_overflow(text) is not None:
            out.append(ContextOverflow(text.strip()))
        else:
            out.append(OtherLine(text))

    def _kpi_line(self, text: str) -> bool:
        assert self._kpis is not None
        if (m := _KPI_INIT_RE.search(text)) is not None:
            self._kpis["init_us"] = int(m.group(1))
        elif (m := _KPI_PROMPT_RE.search(text)) is not None:
            self._kpis["prompt_us"] = int(m.group(1))
            self._kpis["prompt_rate"] = float(m.group(2))
        elif (m := _KPI_GEN_RE.search(text) or _KPI_OLD_GEN_RE.match(text)) is not None:
            self._kpis["generation_us"] = int(m.group(1))
            self._kpis["generation_rate"] = float(m.group(2))
        elif (m := _KPI_OLD_PROMPT_RE.match(text)) is not None:
            self._kpis["prompt_us"] = int(m.group(1))
        else:
            return False
        return True

    def _flush_kpis(self, out: list[StreamEvent]) -> None:
        if self._kpis is None:
            return
        k, self._kpis = self._kpis, None
        out.append(
            Kpis(
                init_us=k.get("init_us"),  # type: ignore[arg-type]
                prompt_us=k.get("prompt_us"),  # type: ignore[arg-type]
                prompt_rate=k.get("prompt_rate"),
                generation_us=k.get("generation_us"),  # type: ignore[arg-type]
                generation_rate=k.get("generation_rate"),
            )
        )

    # -- the prompt echo

    def _skip_echo(self, out: list[StreamEvent], eof: bool) -> None:
        take = self._buf[: self._echo_left]
        self._echo += take
        self._echo_left -= len(take)
        self._buf = self._buf[len(take) :]
        if self._echo_left == 0:
            out.append(PromptEcho(self._decode(self._echo)))
            self._echo = b""
            # The echo's own newline follows; the header parser drops blank lines.
            self._state = _HEADER

    def _echo_to_eol(self, out: list[StreamEvent], eof: bool) -> None:
        nl = self._buf.find(b"\n")
        if nl < 0:
            self._echo += self._buf
            self._buf = b""
            return
        out.append(PromptEcho(self._decode(self._echo + self._buf[:nl])))
        self._echo = b""
        self._buf = self._buf[nl + 1 :]
        self._state = _HEADER

    # -- the reply

    def _reply(self, out: list[StreamEvent], eof: bool) -> None:
        buf = self._buf
        while True:
            cut = _first_terminal(buf)
            if cut is None:
                keep = 0 if eof else _partial_suffix(buf, (END_MARK, ABORT_MARK))
                self._emit_text(out, buf[: len(buf) - keep])
                self._buf = buf[len(buf) - keep :]
                return
            pos, mark = cut
            self._emit_text(out, buf[:pos])
            tail = buf[pos + len(mark) :]
            verdict = _classify_tail(tail, eof)
            if verdict == _REJECTED:
                # Part of the reply after all.
                self._emit_text(out, mark)
                buf = tail
                continue
            if verdict == _UNDECIDED:
                self._buf = buf[pos:]
                return
            self._emit_text(out, b"", final=True)
            out.append(End() if mark == END_MARK else Abort())
            self._buf = tail
            self._state = _AFTER
            return

    def _emit_text(self, out: list[StreamEvent], data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final=final)
        if not text:
            return
        if out and isinstance(out[-1], ReplyText):
            out[-1] = ReplyText(out[-1].text + text)  # coalesce within one feed()
        else:
            out.append(ReplyText(text))

    @staticmethod
    def _decode(raw: bytes) -> str:
        return raw.decode("utf-8", errors="replace")


def _first_terminal(buf: bytes) -> tuple[int, bytes] | None:
    found = [(i, m) for m in (END_MARK, ABORT_MARK) if (i := buf.find(m)) >= 0]
    return min(found) if found else None


def _classify_tail(tail: bytes, eof: bool) -> int:
    """Is a candidate marker followed by what genie-t2t-run writes after a reply?"""
    rest = tail.lstrip(_BLANK)
    if not rest:
        return _CONFIRMED if eof else _UNDECIDED
    undecided = False
    for trailer in _TRAILERS:
        if rest.startswith(trailer):
            return _CONFIRMED
        if trailer.startswith(rest):
            undecided = True
    return _UNDECIDED if undecided and not eof else _REJECTED


@dataclass
class ParsedRun:
    """A whole stdout, parsed."""

    text: str
    events: list[StreamEvent] = field(default_factory=list)
    ended: bool = False
    aborted: bool = False
    overflow: bool = False
    pid: int | None = None
    version: str | None = None
    kpis: Kpis | None = None

    @property
    def reply(self) -> str:
        return self.text

    @property
    def overflow_message(self) -> str | None:
        for event in self.events:
            if isinstance(event, ContextOverflow):
                return event.message
        return None


def parse_all(data: bytes, prompt: str | None) -> ParsedRun:
    parser = GenieStreamParser(prompt)
    events = parser.feed(data) + parser.finish()
    run = ParsedRun(text="".join(e.text for e in events if isinstance(e, ReplyText)), events=events)
    for event in events:
        if isinstance(event, End):
            run.ended = True
        elif isinstance(event, Abort):
            run.aborted = True
        elif isinstance(event, ContextOverflow):
            run.overflow = True
        elif isinstance(event, PidLine) and run.pid is None:
            run.pid = event.pid
        elif isinstance(event, Banner):
            run.version = event.version
        elif isinstance(event, Kpis):
            run.kpis = event
    return run
