"""A SIMULATED stand-in for Baichuan2-7B's tokenizer.json.

Baichuan2's own vocabulary (a SentencePiece model of 125,696 pieces) is not reachable from
the package registries we have. The emulated phone still needs a tokenizer.json that behaves
like Baichuan2's where qwenchat depends on it, so this one has:

- exactly 125,696 ids;
- Baichuan2's special ids: 0 ``<unk>``, 1 ``<s>``, 2 ``</s>``, 195 ``<reserved_106>`` (user),
  196 ``<reserved_107>`` (assistant), each matched as one id when written in the text (ids
  from baichuan-inc/Baichuan2 fine-tune.py and its generation_config; the two names from
  third-party templates, see qwenchat/models/templates/PROVENANCE.md);
- coverage of any text: a byte-level BPE made of the first 125,499 ranks of Qwen's
  vocabulary (qwen.tiktoken), each shifted by 197 so they sit above the reserved range
  (rank r is id 197 + r; ranks 0..255 are the 256 single bytes);
- ids 3..194, which Baichuan2 reserves, as unreachable placeholders. Id 3 is
  ``<|qwenchat_SIMULATED|>``: any copy of the file says what it is (``is_simulated``).

Token counts with it are NOT Baichuan2's: everything measured with it is SIMULATED.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.errors import ConfigError
from qwenchat.models.tokenizers import qwen

if TYPE_CHECKING:
    from tokenizers import Tokenizer

VOCAB_SIZE = 125696
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
USER, ASSISTANT = "<reserved_106>", "<reserved_107>"
SPECIALS = ((UNK, 0), (BOS, 1), (EOS, 2), (USER, 195), (ASSISTANT, 196))
SHIFT = 197  # first id of the byte-level BPE part
SIMULATED_MARKER = "<|qwenchat_SIMULATED|>"
NOTE = "<|qwenchat_stand-in_for_Baichuan2-7B:_not_its_vocabulary|>"


def sources() -> tuple[Path, ...]:
    return qwen.sources()


def _placeholders() -> dict[str, int]:
    names = {SIMULATED_MARKER: 3, NOTE: 4}
    names.update({f"<|qwenchat_SIMULATED_unused_{i}|>": i for i in range(5, 195)})
    return names


def vocab_and_merges(vocab_file: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    ranks, merges = qwen.vocab_and_merges(vocab_file)
    keep = VOCAB_SIZE - SHIFT  # ranks 0..keep-1
    vocab = {token: rank + SHIFT for token, rank in ranks.items() if rank < keep}
    # A merge survives when both halves and the result are kept (the result's rank is
    # where tiktoken applies it; a later-ranked half means another way to split it).
    kept_merges = [(a, b) for a, b in merges if a in vocab and b in vocab and a + b in vocab]
    fixed = dict(SPECIALS) | _placeholders()
    clash = sorted(set(fixed) & set(vocab))
    if clash:
        raise ConfigError(f"{vocab_file}: the stand-in's names {clash} are BPE tokens too.")
    vocab |= fixed
    if sorted(vocab.values()) != list(range(VOCAB_SIZE)):
        raise ConfigError(f"{vocab_file}: the stand-in does not fill ids 0..{VOCAB_SIZE - 1}.")
    return vocab, kept_merges


def build(sources: tuple[Path, ...]) -> tuple[Tokenizer, dict[str, Any]]:
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import BPE

    vocab, merges = vocab_and_merges(sources[0])
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=False))
    qwen.byte_level_pipeline(tokenizer, nfc=False)
    # Already in the vocabulary at their ids: adding them makes them matched in text.
    tokenizer.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t, _ in SPECIALS]
    )
    for token, token_id in SPECIALS:
        if tokenizer.token_to_id(token) != token_id:
            raise ConfigError(
                f"the stand-in put {token} at {tokenizer.token_to_id(token)}, not {token_id}."
            )
    return tokenizer, _config()


def _config() -> dict[str, Any]:
    return {
        "add_bos_token": False,
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
        "additional_special_tokens": [USER, ASSISTANT],
        "bos_token": BOS,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "model_max_length": 4096,
        "pad_token": UNK,  # Baichuan2's generation_config: pad_token_id 0
        "qwenchat_note": (
            "SIMULATED: a stand-in with Baichuan2-7B's vocabulary size and special ids, not its "
            "vocabulary (Qwen's byte-level BPE ranks shifted by 197); token counts are not "
            "Baichuan2's."
        ),
        "qwenchat_simulated": True,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": UNK,
    }
