"""Qwen2.5-7B-Instruct's tokenizer: Qwen's ranks + its 22 control tokens (151,665 ids),
checked against hand-written ids, against tiktoken on the same ranks (an independent BPE),
and through transformers."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenchat.models import get_model
from qwenchat.models.tokenizers import ensure_tokenizer
from qwenchat.models.tokens import TokenCounter

REPO = Path(__file__).resolve().parent.parent

# Written out from Qwen's docs and the Qwen tokenizer files (models-research.md section 5):
# (token, id, special). Not read from qwenchat's own table.
CONTROL = [
    ("<|endoftext|>", 151643, True),
    ("<|im_start|>", 151644, True),
    ("<|im_end|>", 151645, True),
    ("<|object_ref_start|>", 151646, True),
    ("<|object_ref_end|>", 151647, True),
    ("<|box_start|>", 151648, True),
    ("<|box_end|>", 151649, True),
    ("<|quad_start|>", 151650, True),
    ("<|quad_end|>", 151651, True),
    ("<|vision_start|>", 151652, True),
    ("<|vision_end|>", 151653, True),
    ("<|vision_pad|>", 151654, True),
    ("<|image_pad|>", 151655, True),
    ("<|video_pad|>", 151656, True),
    ("<tool_call>", 151657, False),
    ("</tool_call>", 151658, False),
    ("<|fim_prefix|>", 151659, False),
    ("<|fim_middle|>", 151660, False),
    ("<|fim_suffix|>", 151661, False),
    ("<|fim_pad|>", 151662, False),
    ("<|repo_name|>", 151663, False),
    ("<|file_sep|>", 151664, False),
]


@pytest.fixture(scope="module")
def tokenizer_json() -> Path:
    return ensure_tokenizer("qwen2.5-7b-instruct")


@pytest.fixture(scope="module")
def counter(tokenizer_json) -> TokenCounter:
    return TokenCounter(tokenizer_json)


@pytest.fixture(scope="module")
def tiktoken_qwen25():
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from qwenchat.models.tokenizers.qwen import qwen_tiktoken_path

    ranks = load_tiktoken_bpe(str(qwen_tiktoken_path()))
    # Qwen's pre-tokenizer regex, written out again here (digits one by one).
    pattern = (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
        r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
    )
    return tiktoken.Encoding(
        "qwen2.5",
        pat_str=pattern,
        mergeable_ranks=ranks,
        special_tokens={t: i for t, i, _ in CONTROL},
    )


_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t, _, _ in CONTROL) + ")")


def _oracle(enc, text: str) -> list[int]:
    """Control tokens cut out first, NFC on the rest, then tiktoken's BPE."""
    ids: list[int] = []
    for piece in _SPECIAL_RE.split(text):
        if _SPECIAL_RE.fullmatch(piece):
            ids.append(enc.encode_single_token(piece))
        elif piece:
            ids.extend(enc.encode_ordinary(unicodedata.normalize("NFC", piece)))
    return ids


def test_vocabulary_size(counter):
    assert counter.vocab_size == 151665
    assert get_model("qwen2.5-7b-instruct").tokenizer.vocab_size == 151665
    assert counter.decode([151664]) == "<|file_sep|>"
    assert counter.token_to_id("<think>") is None  # Qwen3's, not Qwen2.5's


def test_published_prompt_ids(counter):
    # Qwen2.5's default system prompt rendered and tokenized by its own tokenizer (a published
    # capture in the code index, file id 52483791150; the same ids in several others).
    text = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"
    )
    assert counter.encode(text) == [
        151644, 8948, 198, 2610, 525, 1207, 16948, 11, 3465, 553, 54364, 14817, 13, 1446, 525,
        264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 14990, 1879, 151645, 198, 151644,
        77091, 198,
    ]  # fmt: skip
    assert counter.decode(counter.encode(text)) == text


@pytest.mark.parametrize(("token", "token_id", "special"), CONTROL)
def test_control_tokens_are_single_ids_in_text(counter, token, token_id, special):
    assert counter.token_to_id(token) == token_id
    assert counter.encode(token) == [token_id]
    assert counter.encode(f"x{token}y") == [87, token_id, 88]  # "x" 87, "y" 88
    assert counter.decode([token_id]) == token


def test_special_flags_as_qwen_publishes_them(tokenizer_json):
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    assert [(t["content"], t["id"], t["special"]) for t in data["added_tokens"]] == CONTROL
    assert all(t["normalized"] is False for t in data["added_tokens"])
    assert len(data["model"]["vocab"]) == 151643
    assert data["normalizer"] == {"type": "NFC"}


def test_same_ids_as_qwen2_for_ordinary_text(counter):
    qwen2 = TokenCounter(ensure_tokenizer("qwen2-7b-instruct"))
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert counter.encode(text) == qwen2.encode(text)
    # ...but Qwen2 does not know Qwen2.5's extra control tokens.
    assert qwen2.count("<tool_call>") > 1 and counter.encode("<tool_call>") == [151657]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_agrees_with_tiktoken_on_any_text(counter, tiktoken_qwen25, text):
    assert counter.encode(text) == _oracle(tiktoken_qwen25, text)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            list("ab 1\n\t.,'<>|/_你😀é") + ["\u0301", "\r"] + [t for t, _, _ in CONTROL]
        ),
        max_size=40,
    ).map("".join)
)
def test_agrees_with_tiktoken_around_control_tokens(counter, tiktoken_qwen25, text):
    assert counter.encode(text) == _oracle(tiktoken_qwen25, text)


def test_tokenizer_config_and_template(tokenizer_json):
    config = json.loads(
        (tokenizer_json.parent / "tokenizer_config.json").read_text(encoding="utf-8")
    )
    template = (REPO / "qwenchat" / "models" / "templates" / "qwen2_5.jinja").read_text(
        encoding="utf-8"
    )
    assert config["chat_template"] == template
    assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in template
    assert config["eos_token"] == "<|im_end|>" and config["pad_token"] == "<|endoftext|>"
    assert config["bos_token"] is None
    assert config["tokenizer_class"] == "Qwen2Tokenizer"
    assert {
        int(k): (v["content"], v["special"]) for k, v in config["added_tokens_decoder"].items()
    } == {i: (t, s) for t, i, s in CONTROL}


def test_transformers_reads_it_the_same_way(tokenizer_json, counter):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(tokenizer_json.parent))
    assert auto.eos_token_id == 151645 and auto.pad_token_id == 151643
    assert len(auto) == 151665
    for text in [
        "Hello, world!",
        "e\u0301",
        "<tool_call>{}</tool_call>",
        "<|im_start|>user\nhi<|im_end|>",
    ]:
        assert auto.encode(text) == counter.encode(text)
    rendered = auto.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
