"""Reading what the user types: one message per Enter, one message per paste.

* A multi-line paste is ONE message. Terminals that support bracketed paste wrap a paste in
  markers, and GNU readline then returns it whole (CPython turns the feature off for its own
  REPL; a chat wants it on). For terminals that do not, lines that are already waiting when
  a line ends are part of the same paste: nobody types the next line within milliseconds.
* ``\"\"\"`` starts and ends a multi-line message typed by hand.
* A line given back with ``push_back`` (an answer to a [Y/n] question that was not an
  answer) is read again as the next message: nothing typed is swallowed.
* A line that is not valid UTF-8 is refused with one line; the chat goes on.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from qwenchat.errors import UsageError
from qwenchat.paths import data_dir

# How long to wait for more lines of a paste once a line ends. Zero: a terminal delivers a
# paste in one burst, so the rest is already waiting; any wait here is added to every turn's
# Enter → first token (50 ms was measured as such by benchmarks/chat_overhead.py).
PASTE_GAP_S = 0.0


class LineReader:
    """input() with readline history, pastes and \"\"\" blocks."""

    def __init__(
        self,
        input_fn: Callable[[str], str] | None = None,
        pending: Callable[[], bool] | None = None,
    ) -> None:
        self.input_fn = input_fn or input
        self._pushed: list[str] = []
        self._readline: ModuleType | None = None
        self._history: Path | None = None
        if pending is not None:
            self.pending = pending
        elif input_fn is None and _isatty(sys.stdin):
            self.pending = _stdin_pending
        else:
            self.pending = _nothing_pending
        if input_fn is None:
            self._setup_readline()

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # not on every platform; line editing is a nicety
            return
        self._readline = readline
        if "libedit" not in (readline.__doc__ or "") and _isatty(sys.stdin):
            readline.parse_and_bind("set enable-bracketed-paste on")
        try:
            self._history = data_dir() / "chat_history"
        except OSError:  # a read-only data dir: no history file, the chat still works
            self._history = None
            return
        try:
            readline.read_history_file(self._history)
        except OSError:
            pass
        readline.set_history_length(1000)
        import atexit

        atexit.register(self._save_history)

    def _save_history(self) -> None:
        if self._readline is None or self._history is None:
            return
        try:
            self._readline.write_history_file(self._history)
        except OSError:
            pass

    def push_back(self, line: str) -> None:
        """Read ``line`` again as the next message."""
        self._pushed.append(line)

    def read(self) -> str:
        """One message or command; raises EOFError on Ctrl-D."""
        if self._pushed:
            return self._pushed.pop(0)
        line = self._line(">>> ")
        if line.lstrip().startswith('"""'):
            return self._triple_quoted(line)
        return self._with_paste(line)

    def ask(self, prompt: str) -> str:
        """One answer to a question (a paste arriving there is kept whole as well)."""
        return self._with_paste(self._line(prompt))

    def _triple_quoted(self, line: str) -> str:
        first = line.lstrip()[3:]
        if first.rstrip().endswith('"""') and first.strip():
            return first.rstrip()[:-3]
        lines = [first] if first else []
        while True:
            more = self._line("... ")
            if more.rstrip().endswith('"""'):
                tail = more.rstrip()[:-3]
                if tail:
                    lines.append(tail)
                return "\n".join(lines)
            lines.append(more)

    def _with_paste(self, line: str) -> str:
        lines = [line]
        while self.pending():
            try:
                lines.append(self._line(""))
            except EOFError:
                break
        if len(lines) > 1:
            self._history_as_one(lines)
        text = "\n".join(lines)
        # A bracketed paste keeps the newline that ended the pasted text: not part of it.
        return text.rstrip("\n") if "\n" in text else text

    def _history_as_one(self, lines: list[str]) -> None:
        """↑ recalls the pasted message whole, not its last line."""
        readline = self._readline
        if readline is None:
            return
        try:
            added = sum(1 for line in lines if line.strip())
            for _ in range(added):
                length = readline.get_current_history_length()
                if length:
                    readline.remove_history_item(length - 1)
            readline.add_history("\n".join(lines))
        except (AttributeError, ValueError):
            pass

    def _line(self, prompt: str) -> str:
        try:
            return self.input_fn(prompt)
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"that line is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x}); "
                "it was not sent",
                hint="Set your terminal to UTF-8 (e.g. LANG=C.UTF-8).",
            ) from None


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def _stdin_pending() -> bool:
    try:
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], PASTE_GAP_S)
    except (OSError, ValueError):
        return False
    return bool(ready)


def _nothing_pending() -> bool:
    return False


__all__ = ["PASTE_GAP_S", "LineReader"]
