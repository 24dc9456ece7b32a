"""Bench prompts have the asked token count as an independent BPE counts them: tiktoken on
Qwen's own ranks (qwen.tiktoken), which shares no code with qwenchat's tokenizer.json."""

from __future__ import annotations

import pytest
from tiktoken_oracle import qwen_tiktoken_count

from qwenchat.bench.prompts import ChatFrame, PromptMaker, corpus_paragraphs
from qwenchat.errors import UsageError
from qwenchat.models.tokens import default_counter


@pytest.fixture(scope="module")
def tiktoken_count():
    return qwen_tiktoken_count


@pytest.fixture(scope="module")
def maker():
    return PromptMaker(default_counter(), adds_bos=False)


@pytest.mark.parametrize("n, seed", [(21, 0), (64, 1), (200, 7), (1000, 3), (2048, 11)])
def test_prompt_has_exactly_n_tokens_by_tiktoken(maker, tiktoken_count, n, seed):
    prompt = maker.make(n, seed)
    assert (prompt.tokens, prompt.seed) == (n, seed)
    assert tiktoken_count(prompt.text) == n
    assert prompt.text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    )
    assert prompt.text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_a_config_that_adds_bos_gets_one_text_token_fewer(tiktoken_count):
    with_bos = PromptMaker(default_counter(), adds_bos=True)
    prompt = with_bos.make(300, 2)
    assert prompt.tokens == 300
    assert tiktoken_count(prompt.text) == 299


def test_a_prompt_shorter_than_the_template_is_refused(maker, tiktoken_count):
    frame = ChatFrame.for_model(None)
    smallest = tiktoken_count(frame.wrap("Hi"))
    assert maker.min_tokens == smallest
    assert maker.make(smallest, 0).tokens == smallest
    with pytest.raises(UsageError) as info:
        maker.make(smallest - 1, 0)
    assert str(info.value).startswith(
        f"a {smallest - 1}-token prompt is shorter than the chat template ({smallest} tokens)"
    )


def test_the_frame_is_the_models_template_around_the_body():
    frame = ChatFrame.for_model(None)
    assert frame.prefix == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    )
    assert frame.suffix == "<|im_end|>\n<|im_start|>assistant\n"
    assert frame.wrap("B") == frame.prefix + "B" + frame.suffix


def test_corpus_paragraphs_are_single_lines_without_comments():
    paragraphs = corpus_paragraphs()
    assert len(paragraphs) >= 10
    for p in paragraphs:
        assert p and "\n" not in p and "  " not in p and not p.startswith("#")
        assert p == p.strip()


def test_prompts_from_different_seeds_start_at_different_text(maker):
    bodies = {maker.make(400, seed).text for seed in (1, 2, 3, 4)}
    assert len(bodies) == 4
