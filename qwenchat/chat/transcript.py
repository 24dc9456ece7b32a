"""Transcript files (/save and /load): written whole or not at all, read only once valid.

``/load`` of a file that is not a transcript must leave the chat as it was, so a file is
parsed and checked completely before the session is touched; ``/save`` writes a temporary
file beside the target and renames it, so a failed save never leaves half a transcript.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenchat.chat.outcome import StopReason
from qwenchat.chat.plan import ChatMessage
from qwenchat.chat.user_input import validate_setting
from qwenchat.errors import UsageError
from qwenchat.runner.outcome import OLDER_WORDS
from qwenchat.runner.request import SamplerSettings

FORMAT = "qwenchat-transcript/1"
_NOT_OURS_HINT = "Load a file written by /save (its \"format\" is " + FORMAT + ")."


@dataclass(frozen=True)
class Transcript:
    system: str | None
    settings: SamplerSettings
    messages: tuple[ChatMessage, ...]
    model: str | None = None


def parse_transcript(data: Any, source: str, *, ctx_size: int) -> Transcript:
    """A transcript from decoded JSON; UsageError naming the first thing that is wrong."""

    def wrong(why: str) -> UsageError:
        return UsageError(f"{source} is not a qwenchat transcript: {why}", hint=_NOT_OURS_HINT)

    if not isinstance(data, dict):
        raise wrong(f"a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT:
        raise wrong(f"no \"format\": \"{FORMAT}\"")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise wrong("\"system\" is not text")
    raw_settings = data.get("settings") or {}
    if not isinstance(raw_settings, dict):
        raise wrong("\"settings\" is not an object")
    settings: dict[str, Any] = {}
    for key, value in raw_settings.items():
        if value is None:
            continue
        try:
            settings[key] = validate_setting(key, value, ctx_size=ctx_size)
        except UsageError as exc:
            raise wrong(f"settings: {exc.message}") from None
    items = data.get("messages")
    if not isinstance(items, list):
        raise wrong("\"messages\" is not a list")
    known_stops = {s.value for s in StopReason} | {old for old, _ in OLDER_WORDS}
    messages: list[ChatMessage] = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise wrong(f"message {number} is not an object")
        role, content, stop = item.get("role"), item.get("content"), item.get("stop_reason")
        if role not in ("user", "assistant"):
            raise wrong(f"message {number} has role {role!r} (user or assistant expected)")
        if not isinstance(content, str):
            raise wrong(f"message {number} has no text \"content\"")
        if "\x00" in content:
            raise wrong(f"message {number} contains a NUL byte")
        if stop is not None and stop not in known_stops:
            raise wrong(f"message {number} has an unknown stop_reason {stop!r}")
        if role == "assistant" and (not messages or messages[-1].role != "user"):
            # The templates render user/assistant turns; a reply without its question (or
            # two in a row) is not a conversation any model was trained on.
            raise wrong(f"message {number} is a reply that follows no user message")
        if stop is not None:  # a transcript saved before one vocabulary: today's words
            stop = StopReason.parse(stop).value
        messages.append(ChatMessage(role, content, stop if role == "assistant" else None))
    model = data.get("model")
    return Transcript(
        system=system or None,
        settings=SamplerSettings(**settings),
        messages=tuple(messages),
        model=model if isinstance(model, str) else None,
    )


def read_transcript(path: Path, *, ctx_size: int) -> Transcript:
    import stat

    try:
        # A FIFO or a device would block the chat (or never end): only a regular file is read.
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = "folder" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else \
                "special file"
            raise UsageError(f"cannot read {path}: it is a {kind}, not a transcript file",
                             hint="Load a file written by /save.")
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror or exc}", hint="Check the file name."
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(
            f"{path} is not a qwenchat transcript: not JSON ({exc})", hint=_NOT_OURS_HINT
        ) from None
    return parse_transcript(data, str(path), ctx_size=ctx_size)


def write_transcript(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically; one line when the place is wrong."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if path.is_dir():
        raise UsageError(f"cannot save to {path}: it is a folder", hint="Give a file name.")
    from qwenchat.output_file import write_atomic

    write_atomic(
        path, text, failure=UsageError, verb="save to",
        hint="Check that the folder exists and is writable, or choose another path.",
    )


__all__ = ["FORMAT", "Transcript", "parse_transcript", "read_transcript", "write_transcript"]
