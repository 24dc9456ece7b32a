"""How genie-app reads and splits its script (genie_app.md sections 2 and 3).

Reading: genie-app reads the script with ``std::ifstream`` + ``std::getline``. libc++'s filebuf
refills its 4096-byte buffer with ONE ``fread`` of (4096 - unget) bytes (4096 the first time,
4092 after), and bionic's ``fread`` loops on ``read()`` until it has them all or meets EOF. So
from a FIFO a line runs only once ~4 KB more have arrived, or the last writer has closed.
``LineReader`` does exactly that, so a product that forgets to pad its commands hangs here
as it would on a phone.

Splitting: words are separated by spaces (runs collapse); ``"`` opens and closes a quoted part
(spaces kept, quotes dropped); inside quotes a backslash takes the next byte literally. An
unbalanced quote is an error for the whole script.
"""

from __future__ import annotations

import os

FIRST_REFILL = 4096
NEXT_REFILL = 4092


class SplitError(Exception):
    pass


class LineReader:
    """``getline`` over libc++'s filebuf over bionic's ``fread``, on a file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        self._first = True
        self._eof = False

    def _refill(self) -> None:
        want = FIRST_REFILL if self._first else NEXT_REFILL
        self._first = False
        got = 0
        while got < want:
            chunk = os.read(self.fd, want - got)
            if not chunk:
                self._eof = True
                return
            self._buf += chunk
            got += len(chunk)

    def readline(self) -> bytes | None:
        """The next line without its ``\\n``; the last unterminated line at EOF; None after."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return line
            if self._eof:
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                return None
            self._refill()


def split(line: bytes) -> list[bytes]:
    words: list[bytes] = []
    word = bytearray()
    state = 0  # 0 plain, 1 inside quotes, 2 inside quotes after a backslash
    for byte in line:
        c = bytes([byte])
        if state == 0:
            if c == b" ":
                if word:
                    words.append(bytes(word))
                    word.clear()
            elif c == b'"':
                state = 1
            else:
                word += c
        elif state == 1:
            if c == b'"':
                state = 0
            elif c == b"\\":
                state = 2
            else:
                word += c
        else:
            state = 1
            word += c
    if word:
        words.append(bytes(word))
    if state:
        raise SplitError('Cannot split string, asymmetric " found.')
    return words


def combine(words: list[str]) -> str:
    """How genie-app echoes a command: words joined by one space, a word holding a space
    wrapped in double quotes (nothing else escaped)."""
    return " ".join(f'"{w}"' if " " in w else w for w in words)
