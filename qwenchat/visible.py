"""Text from the model or the store, made safe to write to a terminal.

A reply (or a stored message replayed by ``qwenchat history``) may hold terminal control
sequences: ``ESC[2J`` clears the screen, an OSC sets the window title, ``ESC[?1049h``
switches screens. Written raw they act on the user's terminal (issue #27). ``visible`` keeps
newline and tab and shows every other control character as a visible stand-in: C0 controls
and DEL as their Unicode "control pictures" (ESC -> ␛, CR -> ␍), C1 controls and bidi
overrides as ``<U+XXXX>``. The store keeps the text exactly as it came, and ``--json``
escapes it (JSON's own ``\\u001b``).
"""

from __future__ import annotations

import re

_KEEP = "\n\t"
# C0 (but \n, \t), DEL, C1, and the bidi embeddings/overrides/isolates that reorder a line.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match[str]) -> str:
    c = match.group()
    code = ord(c)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab made visible."""
    return _CONTROL.sub(_picture, text)
