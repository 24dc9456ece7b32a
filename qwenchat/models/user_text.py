"""User text reaches the model as text, never as its chat template's control tokens.

Genie tokenizes the prompt text on the phone with the bundle's tokenizer.json, which matches
every added token written in the text (``<|im_end|>``, ``</s>``, ``<reserved_106>``) as one
control id. So a message, a system prompt or a loaded transcript that *contains* such a
marker would close the user's turn and open a forged one (issue #27).

Every text a user supplies therefore goes through ``as_text`` before the template renders
it (``models/template.py`` does it for every message, so the chat session and anything else
that renders a conversation get it for free). The neutralisation is visible and documented:
the ``<`` that opens a control marker becomes ``‹`` (U+2039), e.g. ``<|im_end|>`` is sent as
``‹|im_end|>``. The tokenizer no longer matches it, the model still reads nearly the same
characters, and the user is told (``notice``). The template's own markers are untouched:
they are added by the template after this step. Which text is a marker is the model's
``ChatFormat.control_text`` (every added token of its tokenizer; a test checks the list).

The store keeps the text exactly as it was typed; only what is sent is changed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenchat.models.spec import ChatFormat, ModelSpec

OPEN_MARK = "\u2039"  # ‹ : stands in for the "<" that opens a control marker


@functools.lru_cache(maxsize=16)
def _pattern(control_text: str) -> re.Pattern[str] | None:
    return re.compile(control_text) if control_text else None


def _format(model: ModelSpec | ChatFormat | None) -> ChatFormat:
    from qwenchat.models.registry import get_model
    from qwenchat.models.spec import ModelSpec

    if model is None:
        model = get_model()
    return model.chat if isinstance(model, ModelSpec) else model


@dataclass(frozen=True)
class PlainText:
    text: str  # what is sent to the template
    markers: tuple[str, ...]  # the control markers found in the user's text, in order


def neutralize(text: str, model: ModelSpec | ChatFormat | None = None) -> PlainText:
    """``text`` with every control marker of ``model`` made plain text."""
    pattern = _pattern(_format(model).control_text)
    if pattern is None:
        return PlainText(text, ())
    found: list[str] = []

    def plain(match: re.Match[str]) -> str:
        found.append(match.group())
        marker = match.group()
        return OPEN_MARK + marker[1:] if marker.startswith("<") else marker[0] + "\u2060" + marker[1:]

    return PlainText(pattern.sub(plain, text), tuple(found))


def as_text(text: str, model: ModelSpec | ChatFormat | None = None) -> str:
    return neutralize(text, model).text


def notice(text: str, model: ModelSpec | ChatFormat | None = None, *, what: str = "your text") -> str | None:
    """One line telling the user their text held control markers that were sent as text."""
    markers = neutralize(text, model).markers
    if not markers:
        return None
    unique = list(dict.fromkeys(markers))
    shown = ", ".join(unique[:3]) + (", ..." if len(unique) > 3 else "")
    example = unique[0]
    plain = OPEN_MARK + example[1:] if example.startswith("<") else example
    return (
        f"note: {what} holds {len(markers)} chat-template marker(s) ({shown}); they are sent "
        f"as plain text (e.g. {plain}), never as control tokens."
    )
