"""What the user types, checked before anything reaches the phone: settings and messages.

Every refusal is a UsageError with one line saying what is wrong and what to do; nothing of
the conversation is touched by a refused input.
"""

from __future__ import annotations

import math

from qwenchat.chat.outcome import DEFAULT_CTX_SIZE
from qwenchat.errors import UsageError

SETTING_KEYS = ("temp", "top_k", "top_p", "seed", "max_tokens")
# Wait bounds (seconds) the user may set; beyond a day a bound is no bound.
MAX_TIMEOUT_S = 86400.0


def validate_setting(
    key: str, raw: str | float | int, *, ctx_size: int = DEFAULT_CTX_SIZE
) -> float | int:
    """One setting checked; a bad value raises UsageError with a one-line message.

    ``ctx_size``: the model's context on the phone (max_tokens cannot exceed it).
    """
    if key not in SETTING_KEYS:
        raise UsageError(
            f"unknown setting {key!r}", hint=f"Settings: {', '.join(SETTING_KEYS)}."
        )
    if isinstance(raw, bool):  # a JSON true/false is not a number
        raise UsageError(f"{key} must be a number, not {raw!r}")
    try:
        value: float | int = float(raw) if key in ("temp", "top_p") else int(str(raw))
    except ValueError:
        kind = "a number" if key in ("temp", "top_p") else "a whole number"
        raise UsageError(f"{key} must be {kind}, not {raw!r}") from None
    if key == "temp" and not 0.0 <= value <= 5.0:
        raise UsageError(f"temp must be between 0 and 5, not {raw}")
    if key == "top_p" and not 0.0 < value <= 1.0:
        raise UsageError(f"top_p must be in (0, 1], not {raw}")
    if key == "top_k" and value < 1:
        raise UsageError(f"top_k must be at least 1, not {raw}")
    if key == "seed" and not 0 <= value < 2**32:
        raise UsageError(f"seed must be between 0 and 2^32-1, not {raw}")
    if key == "max_tokens" and not 1 <= value <= ctx_size:
        raise UsageError(
            f"max_tokens must be between 1 and {ctx_size} (the model's context), not {raw}",
            hint="A reply shares the context with the conversation: 256-1024 is usual.",
        )
    return value


def parse_set_command(text: str, *, ctx_size: int = DEFAULT_CTX_SIZE) -> dict[str, float | int]:
    """``temp=0.7 top_k=40`` → {"temp": 0.7, "top_k": 40}; hyphens accepted (top-k)."""
    values: dict[str, float | int] = {}
    words = text.replace(",", " ").split()
    if not words:
        raise UsageError(
            "/set needs key=value pairs", hint="e.g. /set temp=0.7 top_k=40 max_tokens=256"
        )
    for word in words:
        if "=" not in word:
            raise UsageError(f"/set expects key=value, got {word!r}", hint="e.g. /set temp=0.7")
        key, _, raw = word.partition("=")
        key = key.strip().lower().replace("-", "_")
        values[key] = validate_setting(key, raw.strip(), ctx_size=ctx_size)
    return values


def validate_timeout(option: str, value: float | None) -> float | None:
    """--load-timeout / --stall-timeout: a positive number of seconds (None: the default)."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise UsageError(
            f"{option} must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:.0f}, "
            f"not {value:g}",
            hint=f"e.g. {option} 300 (leave it out for a bound derived from the prompt).",
        )
    return value


def check_message(text: str, what: str = "the message") -> str:
    """A message Genie can read: text, valid UTF-8, no NUL byte (Genie reads the prompt
    file as C text and would stop there without a word)."""
    if not text.strip():
        raise UsageError(f"{what} is empty", hint="Type a question.")
    nul = text.find("\x00")
    if nul >= 0:
        raise UsageError(
            f"{what} contains a NUL byte (character {nul + 1})",
            hint="Genie reads the prompt as text and would stop at it: remove it.",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Undecodable input bytes arrive as lone surrogates (surrogateescape): name the byte.
        bad = text[exc.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else repr(bad)
        raise UsageError(
            f"{what} is not valid UTF-8 text ({byte} at character {exc.start + 1})",
            hint="Convert it to UTF-8 first, e.g. iconv -f LATIN1 -t UTF-8.",
        ) from None
    return text


def decode_input(data: bytes, what: str = "stdin") -> str:
    """Bytes the user piped in, as text; one line naming the first bad byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="Convert it to UTF-8 first, e.g. iconv -f LATIN1 -t UTF-8.",
        ) from None


__all__ = [
    "SETTING_KEYS",
    "check_message",
    "decode_input",
    "parse_set_command",
    "validate_setting",
    "validate_timeout",
]
