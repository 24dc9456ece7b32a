"""A one-shot question reaches Genie before its tokenizer is loaded, and its figures stay exact.

Failure modes, each tested:
- the byte bound is below a real tokenizer's count for some text (CJK, emoji, whitespace
  runs, special tokens, leading spaces; Qwen2 byte-level BPE and the SentencePiece models):
  a prompt that does not fit would be sent;
- a prompt whose bound exceeds the budget is planned with the bound (it must be counted);
- the turn's figures (counted prompt tokens, context used) keep the bound instead of the
  exact count;
- a one-shot question waits for the tokenizer parse before Genie starts (the tokenizer is
  loaded when the query's command reaches the phone);
- an interactive chat (tokenizer warmed while the user types), or a run with an explicit
  --load-timeout (its first-token bound must stay tight), is planned with a bound.

Oracles: the real tokenizers for the bound; tiktoken (tests/tiktoken_oracle.py) for the
exact Qwen2 count of a turn.
"""

from __future__ import annotations

import pytest
from tiktoken_oracle import qwen_tiktoken_count

from qwenchat.chat.deferred_count import BoundFirstCounter, upper_bound
from qwenchat.chat.plan import PromptMode, TurnPlan
from qwenchat.chat.session import SamplerSettings, open_chat_session
from qwenchat.models.registry import MODELS
from qwenchat.models.tokenizer_build import ensure_tokenizer
from qwenchat.models.tokens import TokenCounter

TEXTS = [
    "",
    " ",
    "hi",
    "     leading and   runs   of spaces\n\n\n\t\t",
    "你好，世界。東京都は日本の首都です。",
    "😀🚀👩‍👩‍👧‍👦 emoji and ZWJ sequences",
    "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nq [/INST]",
    "a" * 3000,
    " a" * 500,
    "\u0000\u0001 control \u007f bytes \ufeff",
    "ÿþýüûúùø" * 20,
]


@pytest.fixture(scope="module", params=sorted({m.name for m in MODELS}))
def real_counter(request) -> TokenCounter:
    return TokenCounter(ensure_tokenizer(request.param))


def test_bound_is_never_below_a_real_count(real_counter):
    for text in TEXTS:
        assert upper_bound(text) >= real_counter.count(text), text[:40]


def test_over_budget_text_is_counted_not_bounded(real_counter):
    text = "你好" * 50  # 300 UTF-8 bytes
    small = BoundFirstCounter(real_counter, budget=100)
    assert small.count(text) == real_counter.count(text)
    assert text not in small.estimated
    roomy = BoundFirstCounter(real_counter, budget=10_000)
    assert roomy.count(text) == 301
    assert roomy.estimated == {text: 301}


def test_exact_plan_replaces_the_bound(real_counter):
    prompt = "<|im_start|>user\nhello there<|im_end|>\n"
    counter = BoundFirstCounter(real_counter, budget=4000)
    bound = counter.count(prompt)
    plan = TurnPlan(PromptMode.REBUILD, prompt, bound + 1, bound + 1, 16, 4096)  # +1: a BOS
    exact = counter.exact_plan(plan)
    assert exact.prompt_tokens == exact.ctx_after_prompt == real_counter.count(prompt) + 1
    assert counter.exact_plan(TurnPlan(PromptMode.REBUILD, "other", 7, 7, 16, 4096)).prompt_tokens == 7


def test_one_shot_starts_genie_before_the_tokenizer_and_reports_exact_figures(bundled_phone):
    _, dev = bundled_phone()
    session = open_chat_session(
        dev, settings=SamplerSettings(max_tokens=8), keep_state=False, warm=False
    )
    loaded_at_start: list[bool] = []
    real_query = session.engine.query

    def query(request, on_text=None):  # noqa: ANN001, ANN202
        loaded_at_start.append(session.counter.loaded)
        return real_query(request, on_text)

    session.engine.query = query
    try:
        result = session.send("Tell me about Snapdragon.")
    finally:
        session.end()
    assert loaded_at_start == [False]
    want = qwen_tiktoken_count(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nTell me about Snapdragon.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert result.figures.counted_prompt_tokens == want
    assert result.figures.genie_prompt_tokens == want
    assert result.figures.ctx_used == want + result.figures.genie_generated_tokens


def test_a_warm_chat_counts_before_sending(bundled_phone):
    _, dev = bundled_phone()
    session = open_chat_session(dev, settings=SamplerSettings(max_tokens=8), warm=False)
    session.counter.count("warm")  # what warm-up does while the user types
    try:
        first = session.send("Hi")
    finally:
        session.end()
    assert session._deferred is None
    assert first.figures.counted_prompt_tokens == qwen_tiktoken_count(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_an_explicit_load_timeout_counts_before_sending(bundled_phone):
    # The first-token bound is --load-timeout plus the prompt's prefill: kept tight.
    _, dev = bundled_phone()
    session = open_chat_session(
        dev, settings=SamplerSettings(max_tokens=8), keep_state=False, warm=False,
        load_timeout=30.0,
    )
    loaded_at_start: list[bool] = []
    real_query = session.engine.query

    def query(request, on_text=None):  # noqa: ANN001, ANN202
        loaded_at_start.append(session.counter.loaded)
        return real_query(request, on_text)

    session.engine.query = query
    try:
        session.send("Hi")
    finally:
        session.end()
    assert loaded_at_start == [True]
