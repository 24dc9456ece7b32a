"""PromptMaker with tokenizers written here, whose cuts misbehave in known ways, so the path
real BPE rarely takes is judged: the token-count correction loop, the finish by characters
when the cut oscillates, and the refusal when no text has the count.

Each toy tokenizer is its own oracle: its token count is a regex split anyone can redo by
hand, and the corpus is read here from the data file, not through qwenchat.bench.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qwenchat.bench.prompts import ChatFrame, PromptMaker
from qwenchat.errors import UsageError

CORPUS = Path(__file__).resolve().parents[1] / "qwenchat" / "bench" / "data" / "corpus.txt"


def paragraphs() -> list[str]:
    blocks = CORPUS.read_text(encoding="utf-8").split("\n\n")
    return [" ".join(b.split()) for b in blocks if b.strip() and not b.startswith("#")]


class Toy:
    """One token per regex match; ids handed out in order of first sight."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.ids: dict[str, int] = {}
        self.pieces: list[str] = []

    def encode(self, text: str) -> list[int]:
        out = []
        for piece in re.findall(self.pattern, text):
            if piece not in self.ids:
                self.ids[piece] = len(self.pieces)
                self.pieces.append(piece)
            out.append(self.ids[piece])
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids)

    def count(self, text: str) -> int:
        return len(re.findall(self.pattern, text))


FRAME = ChatFrame("[", "]")


def body_of(text: str) -> str:
    assert text.startswith("[") and text.endswith("]")
    return text[1:-1]


def test_words_that_swallow_the_frame_are_corrected_by_the_count_loop():
    """Words tokenizer: a word and the bracket beside it are ONE token, so the first cut
    (body tokens = n - frame tokens) comes out two short; the loop takes two more and hits.
    The body is then the corpus text itself, cut at a word: no filler letters."""
    toy = Toy(r"\S+|\s")
    maker = PromptMaker(toy, adds_bos=False, frame=FRAME)
    for n in (9, 15, 19):
        prompt = maker.make(n, 1)
        assert prompt.tokens == n and toy.count(prompt.text) == n
        body = body_of(prompt.text)
        # A run of the corpus ending on a whole word (followed by a space or the paragraph end).
        assert any(re.search(re.escape(body) + r"( |$)", p) for p in paragraphs()), body
    # By hand, seed 1 starts at "By midsummer the same streams are clear ..." (9 tokens:
    # "[By", " ", "midsummer", " ", "the", " ", "same", " ", "streams]").
    assert body_of(maker.make(9, 1).text) == "By midsummer the same streams"


def test_a_count_no_text_can_have_is_refused_not_faked():
    """With words and single spaces as tokens, a framed body always has an odd count."""
    toy = Toy(r"\S+|\s")
    maker = PromptMaker(toy, adds_bos=False, frame=FRAME)
    for n in (8, 12):
        with pytest.raises(UsageError) as info:
            maker.make(n, 1)
        assert str(info.value) == f"could not make a prompt of exactly {n} tokens (got {n + 1})"


def test_a_cut_that_oscillates_is_finished_by_characters_from_the_short_side():
    """Characters tokenizer where a space or newline joins the next character: a cut just
    after a paragraph's last "." plus one newline is stripped (one token short), the cut one
    further keeps "\\nO" (one long). The loop cannot settle; the finish by characters appends
    " a" (one token) to the short side."""
    toy = Toy(r"\s?\S|\s")
    maker = PromptMaker(toy, adds_bos=False, frame=FRAME)
    prompt = maker.make(54, 1)
    assert prompt.tokens == 54 and toy.count(prompt.text) == 54
    body = body_of(prompt.text)
    assert body.endswith(" a")
    natural = body[: -len(" a")]
    # What precedes the filler is corpus text ending exactly at a paragraph's end.
    assert natural.endswith("quiet again.")
    assert any(p.endswith(natural.split("\n\n")[-1]) for p in paragraphs())


def test_a_cut_that_lands_long_is_trimmed_by_characters_then_filled():
    """Pairs of non-space characters: where a pair straddles the cut, re-encoding the cut
    text shifts every pair after the bracket, so seed 2's cut for 9 tokens keeps landing one
    token long. The finish trims characters until the count is at most 9, then appends " a".
    By hand: "[d" "un" "g" " " "bu" "rn" "s" " " "a]" is 9 pairs."""
    toy = Toy(r"\S\S?|\s")
    maker = PromptMaker(toy, adds_bos=False, frame=FRAME)
    prompt = maker.make(9, 2)
    assert prompt.tokens == 9 and toy.count(prompt.text) == 9
    assert body_of(prompt.text) == "dung burns a"
    assert any("dung burns " in p for p in paragraphs())
    # For 5 the trimming itself lands on the count ("[d" "un" "g" " " "b]"): no filler.
    assert body_of(maker.make(5, 2).text) == "dung b"


def test_a_chat_frame_is_an_immutable_value():
    """One frame is shared by every prompt a maker makes: it cannot be changed under them."""
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        FRAME.prefix = "<"  # type: ignore[misc]
    assert ChatFrame("[", "]") == FRAME and hash(ChatFrame("[", "]")) == hash(FRAME)
