"""A /load-ed transcript of thousands of messages answers at once (issue #27).

Failure modes, each tested:
- the context check after /load renders and tokenizes the whole transcript once per turn it
  could drop (quadratic: 200-300 s for 2,000 messages, never for 20,000);
- the drop it offers is not the fewest oldest turns that make the turn fit (checked against
  a plain one-by-one search on a small transcript);
- the error line claims an exact need it never counted (it must say "more than").
The work is judged by what is tokenized, not by the clock: a counting tokenizer refuses to
tokenize more than a few contexts' worth of text.
"""

from __future__ import annotations

import pytest

from qwenchat.chat.plan import ChatMessage, ContextBudgetError, full_prompt, turns_to_drop
from qwenchat.chat.transcript import FORMAT, parse_transcript
from qwenchat.models.tokens import TokenCounter


class _Budgeted:
    """The real tokenizer, refusing to tokenize more than ``limit`` characters in all."""

    def __init__(self, limit: int) -> None:
        self.real = TokenCounter.for_model(None)
        self.limit = limit
        self.chars = 0

    def count(self, text: str) -> int:
        self.chars += len(text)
        assert self.chars <= self.limit, f"tokenized {self.chars} characters so far"
        return self.real.count(text)


def _messages(n: int, words: int = 100) -> list[ChatMessage]:
    return [ChatMessage("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * words)
            for i in range(n)]


@pytest.mark.parametrize("n", [2000, 20000])
def test_the_drop_offered_for_a_huge_transcript_tokenizes_only_its_end(n):
    history = _messages(n)
    counter = _Budgeted(limit=400_000)  # the transcript is 1-10 MB; a context is ~16 KB
    drop = turns_to_drop(None, history, "hi", counter, 512, 4096)
    # What is kept fits, one turn more does not (judged with an unbounded count).
    real = TokenCounter.for_model(None)
    turns = [history[i:i + 2] for i in range(0, n, 2)]

    def need(d: int) -> int:
        kept = [m for t in turns[d:] for m in t]
        return real.count(full_prompt(None, kept + [ChatMessage("user", "hi")])) + 512

    assert need(drop) <= 4096 < need(drop - 1)


def test_the_drop_is_the_fewest_turns_on_a_small_transcript():
    real = TokenCounter.for_model(None)
    for words in (10, 90, 400, 1500):
        history = _messages(12, words)
        turns = [history[i:i + 2] for i in range(0, 12, 2)]
        expected = None
        for d in range(1, 7):  # the plain search, one render per possible drop
            kept = [m for t in turns[d:] for m in t]
            if real.count(full_prompt(None, kept + [ChatMessage("user", "q")])) + 512 <= 4096:
                expected = d
                break
        assert turns_to_drop(None, history, "q", real, 512, 4096) == expected


def test_a_loaded_20000_message_transcript_answers_with_an_offer(bundled_phone):
    from qwenchat.chat.session import SamplerSettings, open_chat_session

    _, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=64))
    try:
        data = {"format": FORMAT, "messages": [
            {"role": m.role, "content": m.content} for m in _messages(20000)]}
        s.load_transcript(parse_transcript(data, "big.json", ctx_size=s.ctx_size))
        s.counter = _Budgeted(limit=400_000)
        with pytest.raises(ContextBudgetError) as info:
            s.send("hi")
        assert info.value.message.startswith("this turn needs more than ")
        assert info.value.drop_turns is not None and info.value.drop_turns > 9000
    finally:
        s.end()
