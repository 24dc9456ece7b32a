"""Build Qwen2's ``tokenizer.json`` without the model hub.

Qwen2 tokenizes with Qwen's byte-level BPE vocabulary (151,643 ranks). The hub is out of
reach here, but PyPI's ``dashscope`` ships the same ranks as ``resources/qwen.tiktoken``;
transformers' ``TikTokenConverter`` turns them into a ``tokenizers`` BPE model. The
converter's defaults are not Qwen2's, so the pieces around the model are set to match the
``tokenizer.json`` published with Qwen/Qwen2-7B-Instruct:

- normalizer NFC (Qwen2 composes "e\\u0301" into "é" before BPE);
- pre-tokenizer: Split on Qwen2's regex (digits one by one: ``\\p{N}``, not ``\\p{N}{1,3}``),
  behaviour isolated, then ByteLevel without prefix space and without its own regex;
- decoder and post-processor ByteLevel, which add nothing (Qwen2 has no BOS);
- ``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645 as special tokens.

The result is cached under ``cache_dir()/qwen2-tokenizer/<key>`` (a build takes a few
seconds), where the key hashes everything the build reads: the vocabulary file, this
module's source, the chat template and the versions of tokenizers and transformers. A change
to any of them builds anew; nobody has to remember to bump a number. Run
``python -m qwenchat.models.tokenizer_build OUT_DIR`` to write one elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from qwenchat.errors import ConfigError
from qwenchat.paths import cache_dir

PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# In id order: the converter appends them right after the 151,643 BPE ranks.
SPECIAL_TOKENS: dict[str, int] = {ENDOFTEXT: 151643, IM_START: 151644, IM_END: 151645}
VOCAB_SIZE = 151643

TEMPLATE_PATH = Path(__file__).parent / "templates" / "qwen2.jinja"

_INSTALL_HINT = "Run `make install` (it installs tiktoken and dashscope's qwen.tiktoken)."


def qwen_tiktoken_path() -> Path:
    """dashscope's copy of Qwen's BPE ranks, found without importing dashscope (its
    dependencies are deliberately not installed)."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The Qwen2 vocabulary (dashscope's qwen.tiktoken) is not installed.", _INSTALL_HINT)
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "resources" / "qwen.tiktoken"
        if path.is_file():
            return path
    raise ConfigError("dashscope is installed but has no resources/qwen.tiktoken.", _INSTALL_HINT)


def _require_tiktoken() -> None:
    if importlib.util.find_spec("tiktoken") is None:
        raise ConfigError("tiktoken is needed to read qwen.tiktoken but is not installed.", _INSTALL_HINT)


def _convert(vocab_file: Path):
    """A ``tokenizers.Tokenizer`` equal in behaviour to Qwen2's published tokenizer.json."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    converter = TikTokenConverter(
        vocab_file=str(vocab_file),
        pattern=PRETOKENIZE_REGEX,
        add_prefix_space=False,
        extra_special_tokens=list(SPECIAL_TOKENS),
    )
    tokenizer = converter.converted()

    # Qwen2's file predates `ignore_merges` (so it is false): plain rank-ordered merges. On
    # Qwen's vocabulary both settings give tiktoken's ids (checked in tests/test_tokenizer.py).
    tokenizer.model.ignore_merges = False
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tokenizer.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )

    for token, expected in SPECIAL_TOKENS.items():
        got = tokenizer.token_to_id(token)
        if got != expected:  # a different vocabulary file would shift them
            raise ConfigError(
                f"{vocab_file} is not Qwen's vocabulary: {token} got id {got}, expected {expected}.",
                _INSTALL_HINT,
            )
    return tokenizer


def tokenizer_config() -> dict:
    """Qwen2-7B-Instruct's tokenizer_config.json (the fields that matter for chat)."""
    added = {
        str(token_id): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token, token_id in SPECIAL_TOKENS.items()
    }
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "chat_template": TEMPLATE_PATH.read_text(encoding="utf-8"),
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files get pushed and shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build_qwen2_tokenizer(out_dir: Path) -> Path:
    """Write tokenizer.json and tokenizer_config.json into ``out_dir``; return tokenizer.json."""
    _require_tiktoken()
    vocab_file = qwen_tiktoken_path()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _convert(vocab_file)
    target = out_dir / "tokenizer.json"
    _atomic_write(target, tokenizer.to_str(pretty=False))
    _atomic_write(
        out_dir / "tokenizer_config.json",
        json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n",
    )
    return target


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # One builder at a time (pytest-xdist workers, two CLI calls): the others wait, then
    # find the finished copy instead of spending seconds building their own.
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_key() -> str:
    """A digest of every input of the build (see the module docstring)."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in (qwen_tiktoken_path(), Path(__file__), TEMPLATE_PATH):
        digest.update(path.read_bytes())
        digest.update(b"\0")
    for package in ("tokenizers", "transformers"):
        digest.update(f"{package}={version(package)}\0".encode())
    return "qwen2-" + digest.hexdigest()[:16]


def cached_tokenizer_dir() -> Path:

    return cache_dir() / "qwen2-tokenizer" / build_key()


def ensure_qwen2_tokenizer() -> Path:
    """The cached tokenizer.json, built on first use. Safe to call from several processes."""
    final = cached_tokenizer_dir()
    target = final / "tokenizer.json"
    if target.is_file():
        return target
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    key = final.name
    with _locked(root / f".{key}.lock"):
        if target.is_file():
            return target
        # Build beside the final place, then rename the whole folder in one step: a
        # reader sees either no folder or a complete one.
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}-build-"))
        try:
            build_qwen2_tokenizer(staging)
            os.chmod(staging, 0o755)
            if final.exists():  # left without its tokenizer.json (emptied by hand)
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m qwenchat.models.tokenizer_build OUT_DIR", file=sys.stderr)
        return 2
    try:
        path = build_qwen2_tokenizer(Path(args[0]))
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
