"""Counting a first prompt's tokens while Genie loads, not before it starts.

Loading a tokenizer.json (~8 MB for Qwen2) takes 1-2 s in ``tokenizers`` and holds the GIL
all along: done before the query, it delayed a one-shot question's Genie start by that much
(and every phone round trip made meanwhile). But a prompt's exact count is only needed
before sending when it might not fit: no tokenizer qwenchat runs yields more tokens than
the text has UTF-8 bytes plus one (byte-level BPE: every token covers at least one byte;
SentencePiece with byte fallback: at least one normalized character, the added leading
"▁" being the one extra). So while the tokenizer is not loaded yet, a prompt whose bound
fits the context budget is planned with the bound, sent, and counted exactly once Genie is
started (``load_after``); the turn's figures and the context used are corrected with the
exact count (``exact_plan``). A prompt whose bound does not fit is counted before sending,
as always. The query's first-token bound is derived from the bound then (more lenient by
the prefill time of the difference), so a run with an explicit --load-timeout counts first.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenchat.chat.plan import TokenCounting, TurnPlan

# The tokenizer parse starts this long after the query: the prompt push and Genie's start
# (a few round trips) go first, unslowed by the GIL-holding parse; Genie's model load
# (seconds) hides the parse.
LOAD_DELAY_S = 0.3


def upper_bound(text: str) -> int:
    """Most tokens ``text`` can be, whatever the tokenizer (see the module doc)."""
    return len(text.encode("utf-8")) + 1


class BoundFirstCounter:
    """A counter for plan_turn: the byte bound for texts whose bound is within ``budget``
    tokens, the real count otherwise. ``estimated`` holds the texts given the bound."""

    def __init__(self, counter: TokenCounting, budget: int) -> None:
        self.counter = counter
        self.budget = budget
        self.estimated: dict[str, int] = {}

    def count(self, text: str) -> int:
        bound = upper_bound(text)
        if bound <= self.budget:
            self.estimated[text] = bound
            return bound
        return self.counter.count(text)

    def exact_plan(self, plan: TurnPlan) -> TurnPlan:
        """``plan`` with the exact count of its prompt where the bound stood in for it."""
        bound = self.estimated.get(plan.prompt)
        if bound is None:
            return plan
        delta = self.counter.count(plan.prompt) - bound
        return dataclasses.replace(
            plan,
            prompt_tokens=plan.prompt_tokens + delta,
            ctx_after_prompt=plan.ctx_after_prompt + delta,
        )

    def load_after(self, delay: float = LOAD_DELAY_S) -> threading.Timer:
        """Load the tokenizer in the background ``delay`` s from now (daemon: a run that ends
        first does not wait for it)."""
        timer = threading.Timer(delay, self._load)
        timer.daemon = True
        timer.start()
        return timer

    def _load(self) -> None:
        try:
            self.counter.count("")
        except Exception:  # noqa: BLE001 - exact_plan meets the same error and reports it
            pass
