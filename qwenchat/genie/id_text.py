"""The reply of a token-id query, turned back into text on the host.

genie-t2t-run ``--tokens_file`` and genie-app ``dialog tokenQuery`` write each generated id
followed by a space (their tokenQuery callbacks, genie/genie_app.md §11). ``IdTextDecoder``
takes that text as it streams (an id may be cut between two chunks), decodes the ids with the
model's tokenizer and gives back only new, whole characters: a character whose bytes are split
over two tokens is held until it is complete (decoding shows it as U+FFFD until then).
"""

from __future__ import annotations

from collections.abc import Callable

_HELD = "\ufffd"


class IdTextDecoder:
    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.ids: list[int] = []
        self._digits = ""  # an id not yet ended by its space
        self._shown = 0  # characters of the decoded text already given out

    def feed(self, text: str) -> str:
        for ch in text:
            if ch.isdigit():
                self._digits += ch
            elif self._digits:
                self.ids.append(int(self._digits))
                self._digits = ""
        return self._new(final=False)

    def finish(self) -> str:
        if self._digits:
            self.ids.append(int(self._digits))
            self._digits = ""
        return self._new(final=True)

    def _new(self, *, final: bool) -> str:
        text = self.decode(self.ids) if self.ids else ""
        end = len(text)
        if not final:
            while end > self._shown and text[end - 1] == _HELD:
                end -= 1  # maybe the first bytes of a character still coming
        new = text[self._shown:end]
        self._shown = max(self._shown, end)
        return new
