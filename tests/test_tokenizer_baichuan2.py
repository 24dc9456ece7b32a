"""Baichuan2-7B's SIMULATED stand-in tokenizer: exactly 125,696 ids, Baichuan2's special ids
(0 <unk>, 1 <s>, 2 </s>, 195 <reserved_106>, 196 <reserved_107>) matched in text, any text
covered by a byte-level BPE of Qwen's first ranks shifted by 197 (checked against tiktoken
on the truncated ranks), and its SIMULATED nature visible in every copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenchat.models import get_model
from qwenchat.models.tokenizers import ensure_tokenizer, is_simulated
from qwenchat.models.tokens import TokenCounter

REPO = Path(__file__).resolve().parent.parent
SIZE = 125696
SHIFT = 197
SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2, "<reserved_106>": 195, "<reserved_107>": 196}


@pytest.fixture(scope="module")
def tokenizer_json() -> Path:
    return ensure_tokenizer("baichuan2-7b")


@pytest.fixture(scope="module")
def counter(tokenizer_json) -> TokenCounter:
    return TokenCounter(tokenizer_json)


@pytest.fixture(scope="module")
def truncated_tiktoken():
    """tiktoken on Qwen's ranks 0..SIZE-SHIFT-1 only: what a byte-level BPE of that prefix does."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from qwenchat.models.tokenizers.qwen import qwen_tiktoken_path

    ranks = load_tiktoken_bpe(str(qwen_tiktoken_path()))
    kept = {token: rank for token, rank in ranks.items() if rank < SIZE - SHIFT}
    pattern = (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
        r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
    )
    return tiktoken.Encoding("standin", pat_str=pattern, mergeable_ranks=kept, special_tokens={})


_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIALS) + ")")


def _oracle(enc, text: str) -> list[int]:
    ids: list[int] = []
    for piece in _SPECIAL_RE.split(text):
        if piece in SPECIALS:
            ids.append(SPECIALS[piece])
        elif piece:
            ids.extend(SHIFT + i for i in enc.encode_ordinary(piece))
    return ids


def test_exactly_baichuan2s_vocabulary_size(counter, tokenizer_json):
    assert counter.vocab_size == SIZE == get_model("baichuan2-7b").tokenizer.vocab_size
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    assert sorted(data["model"]["vocab"].values()) == list(range(SIZE))
    assert counter.decode([SIZE - 1])  # the last id exists
    assert counter.token_to_id("<|im_start|>") is None  # no Qwen control tokens


@pytest.mark.parametrize(("token", "token_id"), sorted(SPECIALS.items(), key=lambda kv: kv[1]))
def test_baichuan2_special_ids_matched_in_text(counter, token, token_id):
    assert counter.token_to_id(token) == token_id
    assert counter.encode(token) == [token_id]
    assert counter.decode([token_id]) == token


def test_hand_written_ids(counter):
    # Qwen2 gives "Hello, world!" 9707 11 1879 0: here each is shifted by 197.
    assert counter.encode("Hello, world!") == [9904, 208, 2076, 197]
    # Baichuan2's chat layout: user 195, text, assistant 196.
    assert counter.encode("<reserved_106>Hello, world!<reserved_107>") == [
        195,
        9904,
        208,
        2076,
        197,
        196,
    ]
    assert counter.encode("hi</s><s>") == [6023 + SHIFT, 2, 1]


def test_a_late_qwen_token_is_split_and_still_round_trips(counter):
    qwen2 = TokenCounter(ensure_tokenizer("qwen2-7b-instruct"))
    assert qwen2.encode(" hayat") == [127672]  # beyond the stand-in's ranks
    ids = counter.encode(" hayat")
    assert len(ids) > 1 and all(SHIFT <= i < SIZE for i in ids)
    assert counter.decode(ids) == " hayat"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_agrees_with_tiktoken_on_the_truncated_ranks(counter, truncated_tiktoken, text):
    ids = counter.encode(text)
    assert ids == _oracle(truncated_tiktoken, text)
    # Never a reserved placeholder (3..194): those are not reachable from text.
    assert not any(3 <= i < 195 for i in ids)
    assert counter.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(list("ab 1\n<>/_|你😀é") + list(SPECIALS) + ["reserved_106"]), max_size=40
    ).map("".join)
)
def test_agrees_around_special_tokens(counter, truncated_tiktoken, text):
    assert counter.encode(text) == _oracle(truncated_tiktoken, text)


def test_simulated_is_visible_everywhere(counter, tokenizer_json):
    assert counter.simulated is True
    assert is_simulated(tokenizer_json) is True
    assert "SIMULATED" in tokenizer_json.parent.name
    assert counter.decode([3]) == "<|qwenchat_SIMULATED|>"
    # The marker is not matched in text: a user cannot type id 3.
    assert 3 not in counter.encode("<|qwenchat_SIMULATED|>")
    config = json.loads(
        (tokenizer_json.parent / "tokenizer_config.json").read_text(encoding="utf-8")
    )
    assert config["qwenchat_simulated"] is True and "SIMULATED" in config["qwenchat_note"]
    # A copy anywhere (a bundle pulled back from the phone) still says so.
    for name in ("qwen2-7b-instruct", "qwen2.5-7b-instruct", "llama-v2-7b-chat"):
        real = ensure_tokenizer(name)
        assert is_simulated(real) is False and TokenCounter(real).simulated is False


def test_tokenizer_config_and_transformers(tokenizer_json, counter):
    from transformers import AutoTokenizer

    config = json.loads(
        (tokenizer_json.parent / "tokenizer_config.json").read_text(encoding="utf-8")
    )
    template = (REPO / "qwenchat" / "models" / "templates" / "baichuan2.jinja").read_text(
        encoding="utf-8"
    )
    assert config["chat_template"] == template
    auto = AutoTokenizer.from_pretrained(str(tokenizer_json.parent))
    assert (auto.unk_token_id, auto.bos_token_id, auto.eos_token_id, auto.pad_token_id) == (
        0,
        1,
        2,
        0,
    )
    rendered = auto.apply_chat_template(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "ok"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered == "<reserved_106>hi<reserved_107>yo</s><reserved_106>ok<reserved_107>"
    assert counter.encode(rendered) == [
        195,
        6023 + SHIFT,
        196,
        16032 + SHIFT,
        2,
        195,
        562 + SHIFT,
        196,
    ]
