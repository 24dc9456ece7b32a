"""The Qwen2 tokenizer built from dashscope's qwen.tiktoken, checked against pinned Qwen2
ids, against tiktoken itself (an independent BPE implementation on the same ranks), and
through transformers' loaders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken_oracle import qwen_tiktoken

from qwenchat.errors import ConfigError, QwenchatError
from qwenchat.models import tokenizer_build
from qwenchat.models.tokenizer_build import (
    PRETOKENIZE_REGEX,
    build_qwen2_tokenizer,
    ensure_qwen2_tokenizer,
)
from qwenchat.models.tokens import TokenCounter

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tokenizer_json() -> Path:
    return ensure_qwen2_tokenizer()


@pytest.fixture(scope="module")
def counter(tokenizer_json) -> TokenCounter:
    return TokenCounter(tokenizer_json)


@pytest.fixture(scope="module")
def tiktoken_qwen():
    """Qwen's own BPE as tiktoken runs it (how Qwen's first tokenizer worked)."""
    return qwen_tiktoken()


# Ids of Qwen/Qwen2-7B-Instruct's tokenizer.
PINNED = [
    ("Hello, world!", [9707, 11, 1879, 0]),
    ("12345", [16, 17, 18, 19, 20]),
    ("\n\n\n", [1406]),
    ("\n\n", [271]),
    ("\n", [198]),
    (" ", [220]),
    ("<|im_start|>user\nhi<|im_end|>", [151644, 872, 198, 6023, 151645]),
    # A published ChatML prompt and its ids (Qwen/Qwen-7B-Chat, the same ranks and ids; a
    # chat-template test in the code index, file id 62638673195).
    (
        "<|im_start|>system\nYou are assistant.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
        "<|im_start|>assistant\n",
        [151644, 8948, 198, 2610, 525, 17847, 13, 151645, 198, 151644, 872, 198, 14990, 151645, 198]
        + [151644, 77091, 198],
    ),
]


@pytest.mark.parametrize(("text", "ids"), PINNED)
def test_pinned_ids(counter, text, ids):
    assert counter.encode(text) == ids
    assert counter.decode(ids) == text


def test_digits_are_split_one_by_one(counter):
    ids = counter.encode("year 2024: 1234567890")
    digits = [counter.decode([i]) for i in ids if counter.decode([i]).isdigit()]
    assert digits == list("2024") + list("1234567890")


def test_nfc_normalization_composes_accents(counter):
    decomposed = "caf" + "e\u0301"
    composed = "caf\u00e9"
    assert decomposed != composed
    assert counter.encode(decomposed) == counter.encode(composed)
    assert counter.encode("e\u0301") == counter.encode("\u00e9")
    assert counter.decode(counter.encode(decomposed)) == composed


@pytest.mark.parametrize(
    "text",
    [
        "你好，世界",
        "😀👍🏽",
        "\n\n\n",
        "def f(x):\n    return x  # ok\r\n",
        "Grüße, Ελλάδα, Русский",
        "  ",
    ],
)
def test_round_trip(counter, text):
    ids = counter.encode(text)
    assert ids
    assert counter.decode(ids) == text


def test_chinese_and_emoji_use_multibyte_tokens(counter):
    # Qwen's vocabulary has whole-word Chinese tokens: far fewer ids than UTF-8 bytes.
    text = "你好，世界"
    assert counter.count(text) < len(text.encode("utf-8")) // 2
    # A skin-tone emoji is several code points; its tokens still decode back exactly.
    emoji = "😀👍🏽"
    assert "".join(counter.decode([i]) for i in counter.encode("😀")) == "😀"
    assert counter.decode(counter.encode(emoji)) == emoji


@pytest.mark.parametrize(
    ("token", "token_id"),
    [("<|endoftext|>", 151643), ("<|im_start|>", 151644), ("<|im_end|>", 151645)],
)
def test_special_tokens_are_single_ids(counter, token, token_id):
    assert counter.token_to_id(token) == token_id
    assert counter.encode(token) == [token_id]
    assert counter.encode(f"a{token}b") == counter.encode("a") + [token_id] + counter.encode("b")
    assert counter.decode([token_id]) == token
    # Specials are cut out before NFC: a combining mark after ">" does not eat the token.
    assert counter.encode(token + "\u0338")[0] == token_id


def test_nothing_is_added_around_text(counter):
    assert counter.encode("") == []
    assert counter.count("Hello, world!") == 4  # no BOS: Genie adds one only if configured


_SPECIAL_RE = re.compile(r"(<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>)")


def _oracle(tiktoken_qwen, text: str) -> list[int]:
    """Qwen2's semantics spelled out with tiktoken: special tokens are cut out first, each
    piece between them is NFC-normalized (tiktoken has no normalizer), then BPE-encoded."""
    ids: list[int] = []
    for piece in _SPECIAL_RE.split(text):
        if _SPECIAL_RE.fullmatch(piece):
            ids.append(tiktoken_qwen.encode_single_token(piece))
        elif piece:
            ids.extend(tiktoken_qwen.encode_ordinary(unicodedata.normalize("NFC", piece)))
    return ids


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_agrees_with_tiktoken_on_any_text(counter, tiktoken_qwen, text):
    ids = counter.encode(text)
    assert ids == _oracle(tiktoken_qwen, text)
    assert counter.decode(ids) == "".join(
        p if _SPECIAL_RE.fullmatch(p) else unicodedata.normalize("NFC", p)
        for p in _SPECIAL_RE.split(text)
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            list("ab 1\n\t.,'>你好😀é") + ["\u0301", "\u0338", "\r", "<|im_end|>", "<|im_start|>"]
        ),
        max_size=40,
    ).map("".join)
)
def test_agrees_with_tiktoken_on_tricky_alphabet(counter, tiktoken_qwen, text):
    assert counter.encode(text) == _oracle(tiktoken_qwen, text)


def test_agrees_with_tiktoken_on_source_code(counter, tiktoken_qwen):
    # This source names the special tokens: both sides must read them as single ids.
    text = (REPO / "qwenchat" / "models" / "tokenizers" / "qwen.py").read_text(encoding="utf-8")
    ids = counter.encode(text)
    assert ids == _oracle(tiktoken_qwen, text)
    assert 151644 in ids


def test_tokenizer_json_structure_matches_qwen2(tokenizer_json):
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    assert data["normalizer"] == {"type": "NFC"}
    split, byte_level = data["pre_tokenizer"]["pretokenizers"]
    assert split["type"] == "Split" and split["behavior"] == "Isolated"
    assert split["pattern"] == {"Regex": PRETOKENIZE_REGEX}
    assert byte_level["type"] == "ByteLevel"
    assert byte_level["add_prefix_space"] is False and byte_level["use_regex"] is False
    assert data["decoder"]["type"] == "ByteLevel"
    assert data["post_processor"]["type"] == "ByteLevel"  # adds no BOS
    assert data["model"]["type"] == "BPE"
    assert len(data["model"]["vocab"]) == 151643
    assert [(t["id"], t["content"], t["special"]) for t in data["added_tokens"]] == [
        (151643, "<|endoftext|>", True),
        (151644, "<|im_start|>", True),
        (151645, "<|im_end|>", True),
    ]


def test_tokenizer_config_beside_it(tokenizer_json):
    config = json.loads(
        (tokenizer_json.parent / "tokenizer_config.json").read_text(encoding="utf-8")
    )
    assert config["eos_token"] == "<|im_end|>"
    assert config["pad_token"] == "<|endoftext|>"
    assert config["bos_token"] is None
    assert config["model_max_length"] == 32768
    assert config["tokenizer_class"] == "Qwen2Tokenizer"
    assert set(config["added_tokens_decoder"]) == {"151643", "151644", "151645"}
    assert "You are a helpful assistant." in config["chat_template"]


def test_transformers_loads_the_folder(tokenizer_json, counter):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = tokenizer_json.parent
    auto = AutoTokenizer.from_pretrained(str(folder))
    assert auto.eos_token == "<|im_end|>" and auto.eos_token_id == 151645
    assert auto.pad_token_id == 151643
    assert auto.bos_token is None
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json))
    for text in [
        "Hello, world!",
        "12345",
        "e\u0301",
        "你好，世界",
        "<|im_start|>user\nhi<|im_end|>",
    ]:
        assert auto.encode(text) == counter.encode(text)
        assert fast.encode(text) == counter.encode(text)


def test_token_counter_bad_file(tmp_path):
    with pytest.raises(ConfigError):
        TokenCounter(tmp_path / "missing.json").count("x")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError):
        TokenCounter(bad).count("x")


def test_missing_dashscope_says_make_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "dashscope" else real(name, *a),
    )
    with pytest.raises(QwenchatError) as info:
        tokenizer_build.qwen_tiktoken_path()
    assert isinstance(info.value, ConfigError)
    assert "make install" in info.value.hint


def test_missing_tiktoken_says_make_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tiktoken" else real(name, *a)
    )
    with pytest.raises(ConfigError) as info:
        build_qwen2_tokenizer(tmp_path / "out")
    assert "make install" in info.value.hint
    assert not (tmp_path / "out" / "tokenizer.json").exists()


def test_module_entry_writes_a_folder(tmp_path, tokenizer_json):
    """The command copies the cached build (warm here), so it takes a second."""
    out = tmp_path / "bundle"
    done = subprocess.run(
        [sys.executable, "-m", "qwenchat.models.tokenizer_build", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == out / "tokenizer.json"
    assert TokenCounter(out / "tokenizer.json").encode("12345") == [16, 17, 18, 19, 20]
    assert json.loads((out / "tokenizer_config.json").read_text())["eos_token"] == "<|im_end|>"
    assert (out / "tokenizer.json").read_bytes() == tokenizer_json.read_bytes()
    usage = subprocess.run(
        [sys.executable, "-m", "qwenchat.models.tokenizer_build"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "usage" in usage.stderr
