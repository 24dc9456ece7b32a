"""The simulated Genie's own tokenizer (``qwenchat/emulator/genie_sim/tokenizer.py``), which
reads each bundle's tokenizer.json and runs BPE in pure Python, checked against
implementations that share no code with it nor with qwenchat:

- tiktoken over Qwen's ranks (dashscope's qwen.tiktoken) for Qwen2, Qwen2.5 and the
  Baichuan2 stand-in (Qwen's first ranks shifted by 197), with the pre-tokenizer pattern,
  the control-token ids and NFC written out here;
- npm's llama-tokenizer-js, run under node, for Llama 2 (a SentencePiece BPE with its own
  merge loop and byte fallback).

Each comparison runs a varied corpus (CJK, emoji sequences, combining marks, digits,
whitespace runs, code, contractions, control tokens written in the text) and a seeded random
one, and the reverse way: every id's bytes, and text -> ids -> bytes round trips.

Because this tokenizer is the phone's token count, a bug in it would make the phone agree
or disagree with qwenchat for the wrong reason; these tests keep it honest on its own.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import random
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from qwenchat.emulator.genie_sim import tokenizer as sim
from qwenchat.models.tokenizers import ensure_tokenizer

# Qwen2's pre-tokenizer pattern, as published in Qwen/Qwen2-7B-Instruct's tokenizer.json.
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_RANKS = 151643
QWEN2_CONTROL = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
# Qwen2.5's 22 control tokens ("vocabulary size totaling 151,665", Qwen's docs), in id order.
QWEN2_5_CONTROL = {
    name: 151643 + i
    for i, name in enumerate(
        "<|endoftext|> <|im_start|> <|im_end|> <|object_ref_start|> <|object_ref_end|> "
        "<|box_start|> <|box_end|> <|quad_start|> <|quad_end|> <|vision_start|> "
        "<|vision_end|> <|vision_pad|> <|image_pad|> <|video_pad|> <tool_call> </tool_call> "
        "<|fim_prefix|> <|fim_middle|> <|fim_suffix|> <|fim_pad|> <|repo_name|> "
        "<|file_sep|>".split()
    )
}
# Baichuan2's special ids (baichuan-inc/Baichuan2); the stand-in's BPE part starts at 197.
BAICHUAN_SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2, "<reserved_106>": 195, "<reserved_107>": 196}
BAICHUAN_SHIFT = 197
BAICHUAN_SIZE = 125696
LLAMA_SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2}

CORPUS = [
    "Hello, world!",
    "hello world",
    " leading space and trailing space ",
    "12345 3.14159 1,000,000 0x1F 2026-11-30",
    "你好，世界！这是一个测试。",
    "東京都渋谷区 日本語のテキスト、カタカナ・ひらがな",
    "한국어 텍스트입니다",
    "Emoji: 🙂🤖👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "e\u0301te\u0301 cafe\u0301 nai\u0308ve",  # combining marks: NFC composes them for Qwen
    "été café naïve Ångström",
    "\t\ttabs\tand  double  spaces    and\n\n\nnewlines\r\n\r\nCRLF",
    "trailing newlines\n\n",
    "   ",
    "\n",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    'if (a != b && c >= 0) { console.log("<tag>", a[0]); }',
    "I'm sure you'LL see THEY'RE here, it's John's, we've, I'd",
    "don't DON'T Don't",
    "Ünïcödé: Ελληνικά, русский текст, עברית, العربية, हिन्दी, ภาษาไทย",
    "Math: ∑ᵢ xᵢ² ≤ ∞ → ∀ε>0 ∃δ",
    "non\u00a0breaking\u3000ideographic\u2028line sep",
    "zero\u200bwidth\ufeffbom",
    "mixed 中文English123数字",
    "a" * 300,
    "ab" * 150 + " " + "🙂" * 40,
    "URL https://example.com/path?q=1&r=two#frag and email a.b@c.de",
    "### Markdown\n- item **bold** _it_ `code`\n> quote",
]
# Control tokens written in the text, per model family.
CHATML = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n你好🙂"
    "<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>",
    "text<|im_end|>text <|im_start|> spaced",
    "<|im_start|user> not a token <|im_end",
]
CHATML_2_5 = ["<tool_call>{\"a\": 1}</tool_call><|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>"]
LLAMA_TURNS = [
    "<s>[INST] <<SYS>>\nYou are assistant.\n<</SYS>>\n\nhello [/INST] hi </s><s>[INST] 2+2? [/INST]",
    "<s><s></s>x</s> <unk>",
]
BAICHUAN_TURNS = ["<reserved_106>你好<reserved_107>Hello</s><s>", "<unk>x<reserved_106>"]


def _random_corpus(seed: int, n: int) -> list[str]:
    """Seeded random strings from ranges that stress BPE: ASCII, Latin-1, CJK, Hangul,
    emoji, combining marks, digits of other scripts, whitespace of several kinds."""
    rng = random.Random(seed)
    ranges = [
        (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0xA0, 0xFF), (0x4E00, 0x4FFF),
        (0xAC00, 0xACFF), (0x1F600, 0x1F64F), (0x300, 0x36F), (0x660, 0x669), (0x3040, 0x30FF),
    ]  # fmt: skip
    spaces = [" ", "  ", "\n", "\t", "\r\n", "\u3000", " \n "]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 25)):
            if rng.random() < 0.2:
                parts.append(rng.choice(spaces))
            else:
                lo, hi = rng.choice(ranges)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 8))))
        out.append("".join(parts))
    return out


RANDOM = _random_corpus(17, 300)


# ---- oracles ---------------------------------------------------------------------------------


def _qwen_tiktoken_file() -> Path:
    spec = importlib.util.find_spec("dashscope")
    assert spec is not None and spec.submodule_search_locations, "make install puts dashscope"
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "resources" / "qwen.tiktoken"
        if path.is_file():
            return path
    raise AssertionError("dashscope has no resources/qwen.tiktoken")


@pytest.fixture(scope="module")
def qwen_ranks() -> dict[bytes, int]:
    """Qwen's ranks, read here from the file's lines (base64 token, space, rank)."""
    ranks = {}
    for line in _qwen_tiktoken_file().read_bytes().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    assert len(ranks) == QWEN_RANKS
    return ranks


def _split_specials(text: str, specials: dict[str, int]) -> list[str]:
    names = sorted(specials, key=len, reverse=True)
    return [p for p in re.split("(" + "|".join(map(re.escape, names)) + ")", text) if p]


class TiktokenOracle:
    def __init__(self, ranks, specials, *, nfc: bool, keep: int | None = None, shift: int = 0):
        import tiktoken

        kept = ranks if keep is None else {t: r for t, r in ranks.items() if r < keep}
        self.enc = tiktoken.Encoding(
            "oracle", pat_str=QWEN_PATTERN, mergeable_ranks=kept, special_tokens={}
        )
        self.specials, self.nfc, self.shift = specials, nfc, shift

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _split_specials(text, self.specials):
            if piece in self.specials:
                ids.append(self.specials[piece])
                continue
            if self.nfc:
                piece = unicodedata.normalize("NFC", piece)
            ids += [i + self.shift for i in self.enc.encode_ordinary(piece)]
        return ids


_NODE = """
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
const tok = (await import(pathToFileURL(process.argv[1]).href)).default;
const texts = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => tok.encode(t, false, true))));
"""


def _llama_js() -> Path:
    path = Path(sys.prefix) / "share/qwenchat/npm/llama-tokenizer-js-1.2.2/llama-tokenizer.js"
    assert path.is_file(), f"make install puts npm llama-tokenizer-js at {path}"
    return path


def llama_oracle(texts: list[str]) -> list[list[int]]:
    """llama-tokenizer-js ids of each text: special tokens cut out here, each stretch between
    them encoded with SentencePiece's dummy prefix (as Llama 2's tokenizer.json does)."""
    node = shutil.which("node")
    assert node, "node is needed for the Llama 2 oracle (apt-get install nodejs)"
    pieces = [_split_specials(t, LLAMA_SPECIALS) for t in texts]
    plain = [p for ps in pieces for p in ps if p not in LLAMA_SPECIALS]
    done = subprocess.run(
        [node, "--input-type=module", "-e", _NODE, str(_llama_js())],
        input=json.dumps(plain), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    encoded = iter(json.loads(done.stdout))
    return [
        [i for p in ps for i in ([LLAMA_SPECIALS[p]] if p in LLAMA_SPECIALS else next(encoded))]
        for ps in pieces
    ]


@pytest.fixture(scope="module")
def sims() -> dict[str, sim.SimTokenizer]:
    """The sim's tokenizer on the tokenizer.json each model's emulator bundle carries."""
    return {
        model: sim.load(ensure_tokenizer(model))
        for model in ("qwen2-7b-instruct", "qwen2.5-7b-instruct", "llama-v2-7b-chat",
                      "baichuan2-7b")
    }  # fmt: skip


@pytest.fixture(scope="module")
def oracles(qwen_ranks):
    return {
        "qwen2-7b-instruct": TiktokenOracle(qwen_ranks, QWEN2_CONTROL, nfc=True),
        "qwen2.5-7b-instruct": TiktokenOracle(qwen_ranks, QWEN2_5_CONTROL, nfc=True),
        "baichuan2-7b": TiktokenOracle(
            qwen_ranks, BAICHUAN_SPECIALS, nfc=False,
            keep=BAICHUAN_SIZE - BAICHUAN_SHIFT, shift=BAICHUAN_SHIFT,
        ),
    }  # fmt: skip


def _diff(texts, got, want) -> list[str]:
    rows = zip(texts, got, want, strict=True)
    return [f"{t!r}: sim {g} != oracle {w}" for t, g, w in rows if g != w][:5]


# ---- encoding agrees with the oracles --------------------------------------------------------

BYTE_LEVEL_TEXTS = {
    "qwen2-7b-instruct": CORPUS + CHATML,
    "qwen2.5-7b-instruct": CORPUS + CHATML + CHATML_2_5,
    "baichuan2-7b": CORPUS + BAICHUAN_TURNS,
}


@pytest.mark.parametrize("model", sorted(BYTE_LEVEL_TEXTS))
def test_byte_level_bpe_matches_tiktoken_on_the_corpus(sims, oracles, model):
    texts = BYTE_LEVEL_TEXTS[model] + RANDOM
    got = [sims[model].encode(t) for t in texts]
    want = [oracles[model].encode(t) for t in texts]
    assert got == want, _diff(texts, got, want)


def test_sentencepiece_bpe_matches_llama_tokenizer_js_on_the_corpus(sims):
    texts = CORPUS + LLAMA_TURNS + RANDOM
    got = [sims["llama-v2-7b-chat"].encode(t) for t in texts]
    want = llama_oracle(texts)
    assert got == want, _diff(texts, got, want)


def test_hand_checked_ids(sims):
    """A few ids known without any tokenizer: Qwen2's ChatML markers and newline (Qwen's
    docs), Llama 2's [INST] (518 25580 29962) and byte fallback for a character outside its
    vocabulary (U+1F916 is F0 9F A4 96, ids 3 + byte)."""
    q = sims["qwen2-7b-instruct"]
    assert q.encode("<|im_start|>user\n") == [151644, 872, 198]
    assert q.id_of("<|im_end|>") == 151645 and q.id_of("<|endoftext|>") == 151643
    llama = sims["llama-v2-7b-chat"]
    assert llama.encode("[INST]") == [518, 25580, 29962]
    assert llama.encode("🤖")[-4:] == [3 + 0xF0, 3 + 0x9F, 3 + 0xA4, 3 + 0x96]
    assert llama.id_of("</s>") == 2
    b = sims["baichuan2-7b"]
    assert b.id_of("<reserved_107>") == 196 and b.encode("<reserved_106>") == [195]


# ---- decoding: every id's bytes, and round trips --------------------------------------------


def test_every_qwen_rank_decodes_to_its_bytes_in_qwen_tiktoken(sims, qwen_ranks):
    for model in ("qwen2-7b-instruct", "qwen2.5-7b-instruct"):
        tok = sims[model]
        wrong = [(r, t) for t, r in qwen_ranks.items() if tok.token_bytes(r) != t]
        assert not wrong, (model, wrong[:5])
    b = sims["baichuan2-7b"]
    keep = BAICHUAN_SIZE - BAICHUAN_SHIFT
    wrong = [r for t, r in qwen_ranks.items() if r < keep and b.token_bytes(r + BAICHUAN_SHIFT) != t]
    assert not wrong, wrong[:5]


def test_control_tokens_decode_to_their_text_and_unknown_ids_to_nothing(sims):
    q = sims["qwen2.5-7b-instruct"]
    for name, token_id in QWEN2_5_CONTROL.items():
        assert q.token_bytes(token_id) == name.encode()
    assert q.token_bytes(10**7) == b"" and q.token_bytes(-1) == b""
    llama = sims["llama-v2-7b-chat"]
    assert [llama.token_bytes(i) for i in (1, 2, 3 + 0x0A, 29871)] == [b"<s>", b"</s>", b"\n", b" "]


@pytest.mark.parametrize("model", ["qwen2-7b-instruct", "qwen2.5-7b-instruct", "baichuan2-7b"])
def test_byte_level_round_trip(sims, model):
    tok = sims[model]
    nfc = model != "baichuan2-7b"
    for text in BYTE_LEVEL_TEXTS[model] + RANDOM:
        ids = tok.encode(text)
        want = unicodedata.normalize("NFC", text) if nfc else text
        assert b"".join(tok.token_bytes(i) for i in ids) == want.encode(), text
        assert tok.decode(ids) == want


def test_sentencepiece_round_trip(sims):
    """SentencePiece's dummy prefix comes back as one leading space, which decoding strips;
    a stretch after a control token gets its own prefix (kept: it is in the ids)."""
    tok = sims["llama-v2-7b-chat"]
    for text in CORPUS + RANDOM:
        ids = tok.encode(text)
        assert tok.decode(ids) == text, text
        assert b"".join(tok.token_bytes(i) for i in ids) == b" " + text.encode()
    assert tok.decode(tok.encode("<s>[INST] hi</s>")) == "<s> [INST] hi</s>"


# ---- token ends (how the sim cuts its reply at a sentence end) -------------------------------


@pytest.mark.parametrize("model", ["qwen2-7b-instruct", "llama-v2-7b-chat"])
def test_each_token_ends_after_the_character_holding_its_last_byte(sims, model):
    """``encode_with_ends``: token k's end is the offset just past the character its last
    byte belongs to. SentencePiece's dummy prefix (one byte, " ") counts as part of the first
    character."""
    tok = sims[model]
    lead = 1 if model == "llama-v2-7b-chat" else 0
    for text in [t for t in CORPUS + RANDOM if unicodedata.is_normalized("NFC", t)]:
        ids, ends = tok.encode_with_ends(text)
        assert len(ends) == len(ids) and ends == sorted(ends) and ends[-1] == len(text)
        done = 0
        for token_id, end in zip(ids, ends, strict=True):
            done += len(tok.token_bytes(token_id))
            covered = max(0, done - lead)  # bytes of ``text`` this token and those before hold
            inside = len(text[: end - 1].encode()) < covered <= len(text[:end].encode())
            assert inside or (covered == 0 and end == 1), (text, token_id, end)


# ---- what the sim refuses ---------------------------------------------------------------------


def test_a_file_it_cannot_run_is_refused_with_the_reason(tmp_path, sims):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(sim.TokenizerFileError, match="not JSON"):
        sim.load(bad)
    doc = json.loads(ensure_tokenizer("llama-v2-7b-chat").read_text())
    doc["model"]["type"] = "WordPiece"
    bad.write_text(json.dumps(doc))
    with pytest.raises(sim.TokenizerFileError, match="WordPiece"):
        sim.load(bad)
    doc["model"]["type"] = "BPE"
    doc["pre_tokenizer"] = {"type": "Whitespace"}
    bad.write_text(json.dumps(doc))
    with pytest.raises(sim.TokenizerFileError, match="Whitespace"):
        sim.load(bad)


def test_a_hand_made_tokenizer_json_gives_the_ids_worked_out_by_hand(tmp_path):
    """Rules the real vocabularies never put to the test, on a file small enough to work out
    by hand: the lowest-ranked merge first whatever its position, the leftmost of equal
    ranks first, unknown characters fused into one <unk>, the longest added token."""
    added = [
        {"id": 8, "content": "<x>", "special": True},
        {"id": 9, "content": "<x>y", "special": False},
    ]
    doc = {
        "added_tokens": [
            dict(a, single_word=False, lstrip=False, rstrip=False, normalized=False)
            for a in added
        ],
        "normalizer": None,
        "pre_tokenizer": None,
        "model": {
            "type": "BPE",
            "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, "abc": 6, "aa": 7},
            "merges": [["b", "c"], ["a", "b"], ["a", "bc"], ["a", "a"]],
            "unk_token": "<unk>",
            "fuse_unk": True,
            "byte_fallback": False,
        },
        "decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "Replace"}]},
    }
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(doc))
    tok = sim.load(path)
    assert tok.encode("abc") == [6]  # b+c (rank 0) before a+b (rank 1), then a+bc
    assert tok.encode("aaa") == [7, 1]  # a+a at 0 and at 1 tie: the leftmost wins
    assert tok.encode("ab") == [4]
    assert tok.encode("azzb") == [1, 0, 2]  # z, z: not in the vocabulary, one fused <unk>
    assert tok.encode("<x>y<x>z") == [9, 8, 0]  # the longer added token where both match
    assert tok.decode([6, 9, 7]) == "abc<x>yaa"
