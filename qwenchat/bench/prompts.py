"""Benchmark prompts of an exact token count, as Genie counts them, after the chat template.

The body is natural text from ``bench/data/corpus.txt`` (own-written, CC0): its paragraphs are
shuffled by a per-trial seed, so every trial sends different text (no cache on the phone or the
host can make a later trial cheaper). The body is cut to the token and then nudged by
characters until the whole rendered prompt has exactly the requested count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Protocol

from qwenchat.errors import UsageError
from qwenchat.models.template import Message, render_chat

if TYPE_CHECKING:
    from qwenchat.models.spec import ModelSpec

_MARK = "\u2063QWENCHAT_BODY\u2063"


class Tokens(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...


@cache
def corpus_paragraphs() -> tuple[str, ...]:
    text = (resources.files("qwenchat.bench") / "data" / "corpus.txt").read_text("utf-8")
    blocks = [b.strip() for b in text.split("\n\n")]
    return tuple(" ".join(b.split()) for b in blocks if b and not b.startswith("#"))


@dataclass(frozen=True)
class ChatFrame:
    """The rendered chat template around the user's text: ``prefix + body + suffix``."""

    prefix: str
    suffix: str

    @classmethod
    def for_model(cls, model: ModelSpec | None = None) -> ChatFrame:
        """One user turn in ``model``'s own chat template (the default model when None)."""
        text = render_chat([Message("user", _MARK)], add_generation_prompt=True, model=model)
        prefix, _, suffix = text.partition(_MARK)
        return cls(prefix, suffix)

    def wrap(self, body: str) -> str:
        return self.prefix + body + self.suffix


@dataclass(frozen=True)
class BenchPrompt:
    text: str  # what goes into the prompt file
    tokens: int  # as Genie counts them (text tokens + BOS when the config adds one)
    seed: int


class PromptMaker:
    """Makes prompts for one tokenizer and one config's BOS rule."""

    def __init__(self, counter: Tokens, *, adds_bos: bool, frame: ChatFrame | None = None):
        self.counter = counter
        self.extra = 1 if adds_bos else 0
        self.frame = frame or ChatFrame.for_model(None)
        self.min_tokens = self.count(self.frame.wrap("Hi"))

    def count(self, text: str) -> int:
        return len(self.counter.encode(text)) + self.extra

    def _body_ids(self, need: int, rng: random.Random) -> list[int]:
        paragraphs = list(corpus_paragraphs())
        ids: list[int] = []
        while len(ids) < need:
            rng.shuffle(paragraphs)
            ids += self.counter.encode("\n\n".join(paragraphs) + "\n\n")
        start = rng.randrange(0, max(1, len(ids) - need)) if len(ids) > need + 200 else 0
        return ids[start:]

    def make(self, n_tokens: int, seed: int) -> BenchPrompt:
        if n_tokens < self.min_tokens:
            raise UsageError(
                f"a {n_tokens}-token prompt is shorter than the chat template "
                f"({self.min_tokens} tokens)"
            )
        rng = random.Random(seed)
        frame_tokens = self.count(self.frame.wrap(""))
        pool = self._body_ids(n_tokens + 64, rng)
        take = max(1, n_tokens - frame_tokens)
        for _ in range(12):
            body = self.counter.decode(pool[:take]).strip()
            text = self.frame.wrap(body)
            got = self.count(text)
            if got == n_tokens:
                return BenchPrompt(text, got, seed)
            take = max(1, take + (n_tokens - got))
        # Token merges at the cut can oscillate: finish by characters from the short side.
        body = self.counter.decode(pool[:take]).strip()
        while self.count(self.frame.wrap(body)) > n_tokens and body:
            body = body[:-1]
        filler = iter("abcdefghijklmnopqrstuvwxyz" * 8)
        while self.count(self.frame.wrap(body)) < n_tokens:
            body += " " + next(filler)
        text = self.frame.wrap(body)
        got = self.count(text)
        if got != n_tokens:  # cannot happen with Qwen2's byte-level BPE, but never lie
            raise UsageError(f"could not make a prompt of exactly {n_tokens} tokens (got {got})")
        return BenchPrompt(text, got, seed)
