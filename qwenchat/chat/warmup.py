"""Loading the tokenizer and the chat template off the critical path of the first turn.

Both take a second or more on a cold start: ``tokenizers`` parses a multi-megabyte
tokenizer.json, and rendering a template needs transformers' Jinja renderer, whose import is
most of the cost. Loaded when the first message is sent, they made turn 1 wait ~1 s longer
than Genie did. A chat starts them in a thread as soon as it knows the phone's model and
tokenizer, so they load while the user types (one-shot: while the link to the phone is set
up); the first turn then only waits for what is left, and the figures count that wait.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from qwenchat.models.template import Message, render_chat

if TYPE_CHECKING:
    from qwenchat.chat.plan import TokenCounting
    from qwenchat.models.spec import ModelSpec


def _load(counter: TokenCounting | None, model: ModelSpec | None) -> None:
    try:
        # The template first: one-shot runs render before they count.
        render_chat([Message("user", "warm-up")], model=model)
        if counter is not None:
            counter.count("warm-up")
    except Exception:  # noqa: BLE001 - the turn meets the same error and reports it properly
        pass


def warm_up(counter: TokenCounting | None, model: ModelSpec | None) -> threading.Thread:
    """Start loading in a daemon thread (a chat that ends first must not wait for it)."""
    thread = threading.Thread(target=_load, args=(counter, model), name="warm-up", daemon=True)
    thread.start()
    return thread


__all__ = ["warm_up"]
