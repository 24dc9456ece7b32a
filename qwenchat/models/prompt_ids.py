"""A conversation as the token ids the model must see: the template's control markers as
control ids, everything a user wrote as text, byte for byte (issue #27).

This is the input of Genie's token-id queries (genie-t2t-run ``--tokens_file``, genie-app
``dialog tokenQuery``; see genie/genie_app.md §11): nothing is tokenized on the phone, so a
user's literal ``<|im_end|>`` can reach the model as the characters it is, not neutralised
(``user_text.py`` is the text path, for builds without token queries).

How: the template is rendered once with a sentinel for each message (so the template's own
text is known) and once with the real text; the template's control markers are the only
places the prompt is split at, as a tokenizer splits at added tokens; each stretch between
them is encoded with every special token read as text (HF tokenizers'
``encode_special_tokens``). With no marker in the user's text the ids equal a plain encode of
the rendered prompt (tested), so nothing else changes. Non-special added tokens (Qwen2.5's
``<tool_call>``) are matched as HF's own tokenizer matches them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.errors import ConfigError
from qwenchat.models.template import Message, chat_template

if TYPE_CHECKING:
    from qwenchat.models.spec import ModelSpec
    from qwenchat.models.tokens import TokenCounter

_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")
_lock = threading.Lock()  # encode_special_tokens is a setting of the shared tokenizer


def _template_spans(messages: Sequence[Message], rendered: str, probe: str) -> list[tuple[int, int]]:
    """Where the template's own text lies in ``rendered`` (the real rendering), from
    ``probe`` (the same rendering with sentinels for the messages' text)."""
    literals = _SENTINEL_RE.split(probe)  # literal, index, literal, index, ..., literal
    texts, order = literals[0::2], [int(i) for i in literals[1::2]]
    spans: list[tuple[int, int]] = []
    pos = 0
    for k, literal in enumerate(texts):
        if not rendered.startswith(literal, pos):
            raise ConfigError("the chat template's rendering could not be followed; token-id "
                              "queries are not possible with it")
        spans.append((pos, pos + len(literal)))
        pos += len(literal)
        if k == len(order):
            break
        content = messages[order[k]].content
        after = texts[k + 1]
        # Llama 2's template strips the text (or, after its system block, only its end): the
        # form that is followed by the next piece of template is the one rendered.
        for shown in (content, content.strip(), content.rstrip(), content.lstrip()):
            if rendered.startswith(shown, pos) and rendered.startswith(after, pos + len(shown)):
                pos += len(shown)
                break
        else:
            raise ConfigError("the chat template changes a message's text beyond stripping it; "
                              "token-id queries are not possible with it")
    if pos != len(rendered):
        raise ConfigError("the chat template's rendering could not be followed")
    return spans


def prompt_ids(
    messages: Sequence[Message],
    counter: TokenCounter,
    *,
    add_generation_prompt: bool = True,
    model: ModelSpec | None = None,
    tokenizer_dir: Path | None = None,
) -> list[int]:
    """The ids of the conversation: the template's control markers as their ids, the
    messages' text as text."""
    from qwenchat.models.registry import get_model

    spec = model or get_model()
    template = chat_template(tokenizer_dir, model=spec)
    rendered = template.render(messages, add_generation_prompt=add_generation_prompt)
    probe = template.render(
        [Message(m.role, _SENTINEL.format(i)) for i, m in enumerate(messages)],
        add_generation_prompt=add_generation_prompt,
    )
    control = re.compile(spec.chat.control_text)
    cuts: list[tuple[int, int]] = []  # the template's control markers in ``rendered``
    for start, stop in _template_spans(messages, rendered, probe):
        for m in control.finditer(rendered, start, stop):
            cuts.append((m.start(), m.end()))
    return _encode_at_markers(counter, rendered, cuts)


def sent_text_ids(prompt: str, counter: TokenCounter, model: ModelSpec | None = None) -> list[int]:
    """The ids of a prompt rendered by qwenchat's text path (``render_chat``,
    ``render_followup``, ``render_continuation``: any mode) with the user's markers restored.

    In that text every control marker left is the template's (the user's were neutralised to
    ``‹…``, user_text.py): the prompt is split at them, and in each stretch between them a
    neutralised marker is given back its ``<`` and encoded as text. So one function serves
    every way a turn is built. (A user who typed ``‹|im_end|>`` itself gets ``<|im_end|>`` as
    text: still text, never a control token.)"""
    from qwenchat.models.registry import get_model
    from qwenchat.models.user_text import OPEN_MARK

    spec = model or get_model()
    control = re.compile(spec.chat.control_text)

    def restored(stretch: str) -> str:
        if OPEN_MARK not in stretch:
            return stretch
        out, i = [], 0
        while (j := stretch.find(OPEN_MARK, i)) >= 0:
            out.append(stretch[i:j])
            m = control.match("<" + stretch[j + 1:j + 80])
            out.append("<" if m else OPEN_MARK)
            i = j + 1
        out.append(stretch[i:])
        return "".join(out)

    cuts = [(m.start(), m.end()) for m in control.finditer(prompt)]
    return _encode_at_markers(counter, prompt, cuts, stretch=restored)


def _encode_at_markers(
    counter: TokenCounter,
    text: str,
    cuts: list[tuple[int, int]],
    stretch: Callable[[str], str] = lambda part: part,
) -> list[int]:
    """``text``'s ids: each span in ``cuts`` (the template's markers, in order) as its one
    control id, every stretch between them (passed through ``stretch``) encoded as plain text
    with special tokens split."""
    tokenizer = counter.tokenizer
    ids: list[int] = []
    with _lock:
        before = tokenizer.encode_special_tokens
        tokenizer.encode_special_tokens = True
        try:
            pos = 0
            for start, stop in cuts:
                if start > pos:
                    ids += tokenizer.encode(stretch(text[pos:start]), add_special_tokens=False).ids
                marker_id = tokenizer.token_to_id(text[start:stop])
                if marker_id is None:
                    raise ConfigError(f"the template's marker {text[start:stop]!r} is not "
                                      "a token of this tokenizer")
                ids.append(marker_id)
                pos = stop
            if pos < len(text):
                ids += tokenizer.encode(stretch(text[pos:]), add_special_tokens=False).ids
        finally:
            tokenizer.encode_special_tokens = before
    return ids
