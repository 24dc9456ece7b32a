"""A chat completions request body, checked field by field into a typed ``ChatRequest``.

Whatever a client sends, the result is either a ``ChatRequest`` or an ``APIError`` (400)
naming the field: wrong JSON, wrong types, values out of range, and fields Genie cannot
honour (``n`` > 1, ``logprobs``, ``tools``, images, ...) are refused, never silently
ignored. Message texts get the chat's own check (``check_message``: no NUL byte, valid
UTF-8), since they go to the same chat session as a typed message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from qwenchat.chat.user_input import check_message
from qwenchat.errors import UsageError
from qwenchat.runner.request import SamplerSettings
from qwenchat.serve.errors import bad_request

# Fields that change nothing Genie does, accepted as OpenAI documents them.
_HARMLESS = {"user", "store", "metadata", "stream_options"}
# Fields Genie cannot honour, refused by name whenever they ask for something (a default
# value, e.g. "n": 1 or "logprobs": false, asks for nothing and is accepted).
_DEFAULTS_ONLY: dict[str, tuple[Any, ...]] = {
    "n": (1, None),
    "logprobs": (False, None),
    "top_logprobs": (0, None),
    "tools": ([], None),
    "tool_choice": ("none", None),
    "functions": ([], None),
    "function_call": ("none", None),
    "parallel_tool_calls": (None,),
    "logit_bias": ({}, None),
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "audio": (None,),
    "modalities": (["text"], None),
    "prediction": (None,),
    "web_search_options": (None,),
    "reasoning_effort": (None,),
    "service_tier": ("auto", "default", None),
    "response_format": ({"type": "text"}, None),
}
_KNOWN = {
    "model",
    "messages",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
} | _HARMLESS | set(_DEFAULTS_ONLY)
MAX_STOP_SEQUENCES = 4  # as OpenAI's API
# OpenAI's temperature range is [0, 2]; Genie's sampler takes the same numbers.
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """What a client asked, checked: the conversation split as the chat session keeps it."""

    model: str
    system: str | None
    history: tuple[Turn, ...]  # every turn before the last user message
    user: str  # the last user message: the new turn
    settings: SamplerSettings
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()


def parse_body(raw: bytes) -> ChatRequest:
    """The request in ``raw`` (the HTTP body), or APIError(400) naming what is wrong."""
    try:
        # UTF-8 only (RFC 8259): json.loads would guess UTF-16/32 from the first bytes.
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            code="invalid_json",
        ) from None
    except RecursionError:
        raise bad_request("the body's JSON is nested too deeply", code="invalid_json") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise bad_request(f"the body's JSON cannot be read: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request(
            f"the body must be a JSON object, not {_kind(data)}", code="invalid_json"
        )
    return parse_request(data)


def parse_request(data: dict[str, Any]) -> ChatRequest:
    for key in data:
        if key not in _KNOWN:
            raise bad_request(
                f"unrecognized request argument supplied: {key}", param=key,
                code="unsupported_parameter",
            )
    for key, accepted in _DEFAULTS_ONLY.items():
        if key in data and not any(_same(data[key], ok) for ok in accepted):
            raise bad_request(
                f"{key} is not supported by Genie on the phone (got {_short(data[key])})",
                param=key,
                code="unsupported_parameter",
            )
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("model must be a non-empty string (GET /v1/models lists them)", "model")
    stream = _optional(data, "stream", bool)
    options = _optional(data, "stream_options", dict)
    include_usage = False
    if options is not None:
        if not stream:
            raise bad_request("stream_options is only allowed with stream: true", "stream_options")
        for key in options:
            if key != "include_usage":
                raise bad_request(
                    f"stream_options.{key} is not supported", f"stream_options.{key}",
                    code="unsupported_parameter",
                )
        usage = options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise bad_request("stream_options.include_usage must be a boolean",
                              "stream_options.include_usage")
        include_usage = bool(usage)
    system, history, user = _messages(data.get("messages"))
    return ChatRequest(
        model=model,
        system=system,
        history=history,
        user=user,
        settings=_settings(data),
        stream=bool(stream),
        include_usage=include_usage,
        stop=_stop(data.get("stop")),
    )


def _messages(raw: Any) -> tuple[str | None, tuple[Turn, ...], str]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty array of messages", "messages")
    system: str | None = None
    turns: list[Turn] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object, not {_kind(message)}", where)
        for key in message:
            if key not in ("role", "content"):
                raise bad_request(
                    f"{where}.{key} is not supported by Genie on the phone", f"{where}.{key}",
                    code="unsupported_parameter",
                )
        role = message.get("role")
        if role == "developer":  # OpenAI's newer name for the system message
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise bad_request(
                f"{where}.role must be system, user or assistant, not {_short(role)}",
                f"{where}.role",
            )
        text = _content(message.get("content"), where)
        try:
            check_message(text, f"{where}.content")
        except UsageError as exc:
            raise bad_request(exc.message, f"{where}.content") from None
        if role == "system":
            if i != 0:
                raise bad_request(
                    f"{where}: a system message is only supported first (the chat has one "
                    "system prompt)",
                    f"{where}.role",
                )
            system = text
        else:
            turns.append(Turn(role, text))
    if not turns or turns[-1].role != "user":
        raise bad_request(
            "the last message must be the user's (a reply is generated for it)",
            f"messages[{len(raw) - 1}].role",
        )
    return system, tuple(turns[:-1]), turns[-1].content


def _content(raw: Any, where: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for j, part in enumerate(raw):
            here = f"{where}.content[{j}]"
            if not isinstance(part, dict):
                raise bad_request(f"{here} must be an object, not {_kind(part)}", here)
            kind = part.get("type")
            if kind != "text":
                raise bad_request(
                    f"{here}.type {_short(kind)} is not supported: the model on the phone "
                    "reads text only",
                    f"{here}.type",
                    code="unsupported_content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"{here}.text must be a string", f"{here}.text")
            texts.append(text)
        if texts:
            return "".join(texts)
    raise bad_request(
        f"{where}.content must be a string or an array of text parts", f"{where}.content"
    )


def _settings(data: dict[str, Any]) -> SamplerSettings:
    max_tokens = _optional(data, "max_tokens", int)
    completion = _optional(data, "max_completion_tokens", int)
    if max_tokens is not None and completion is not None and max_tokens != completion:
        raise bad_request(
            "max_tokens and max_completion_tokens disagree: send one", "max_completion_tokens"
        )
    wanted = completion if completion is not None else max_tokens
    param = "max_completion_tokens" if completion is not None else "max_tokens"
    if wanted is not None and wanted < 1:
        raise bad_request(f"{param} must be at least 1, not {wanted}", param)
    temp = _optional(data, "temperature", float)
    if temp is not None and not 0.0 <= temp <= MAX_TEMPERATURE:
        raise bad_request(f"temperature must be between 0 and 2, not {temp:g}", "temperature")
    top_p = _optional(data, "top_p", float)
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise bad_request(f"top_p must be in (0, 1], not {top_p:g}", "top_p")
    seed = _optional(data, "seed", int)
    if seed is not None and not 0 <= seed < 2**32:
        raise bad_request(f"seed must be between 0 and 2^32-1 (Genie's), not {seed}", "seed")
    return SamplerSettings(temp=temp, top_p=top_p, seed=seed, max_tokens=wanted)


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise bad_request("stop must be a string or an array of strings", "stop")
    if len(items) > MAX_STOP_SEQUENCES:
        raise bad_request(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", "stop")
    if any(not s for s in items):
        raise bad_request("stop sequences must not be empty", "stop")
    return tuple(items)


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise bad_request(f"{key} must be a finite number", key)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        names = {float: "a number", int: "an integer", bool: "a boolean", dict: "an object"}
        raise bad_request(f"{key} must be {names[kind]}, not {_kind(value)}", key)
    return value


def _same(value: Any, accepted: Any) -> bool:
    if isinstance(value, bool) != isinstance(accepted, bool):
        return False
    return bool(value == accepted)


def _kind(value: Any) -> str:
    return {
        dict: "an object", list: "an array", str: "a string", bool: "a boolean",
        int: "a number", float: "a number", type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["ChatRequest", "Turn", "parse_body", "parse_request"]
