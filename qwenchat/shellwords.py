"""Quoting for the phone's shell (mksh with toybox on Android).

A neutral home: genie/ builds command lines and device/ runs them, and neither may import
the other. Only paths and fixed words are ever quoted onto a command line; user text
travels as a file.
"""

from __future__ import annotations

import shlex


def quote(word: str) -> str:
    """Quote one word for the phone's POSIX shell."""
    return shlex.quote(str(word))


def join(words: list[str]) -> str:
    """A command line of quoted words."""
    return " ".join(quote(w) for w in words)
