"""Build a model's ``tokenizer.json`` without the model hub (entry point and old names).

The builders live in ``qwenchat.models.tokenizers``; this module keeps the names other code
calls (``ensure_qwen2_tokenizer``, ``ensure_tokenizer``) and the command
``python -m qwenchat.models.tokenizer_build OUT_DIR [--model NAME]`` that writes one model's
tokenizer.json and tokenizer_config.json into OUT_DIR (default model: Qwen2-7B-Instruct),
copied from the cache (built there first when missing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from qwenchat.errors import QwenchatError
from qwenchat.models.registry import get_model
from qwenchat.models.spec import ModelSpec
from qwenchat.models.tokenizers import (
    build_key,
    build_tokenizer,
    ensure_tokenizer,
    is_simulated,
    tokenizer_dir,
    write_tokenizer,
)
from qwenchat.models.tokenizers.qwen import PRETOKENIZE_REGEX, qwen_tiktoken_path

__all__ = [
    "PRETOKENIZE_REGEX",
    "build_key",
    "build_qwen2_tokenizer",
    "build_tokenizer",
    "ensure_qwen2_tokenizer",
    "ensure_tokenizer",
    "is_simulated",
    "main",
    "qwen_tiktoken_path",
    "tokenizer_dir",
    "write_tokenizer",
]

QWEN2 = "qwen2-7b-instruct"


def ensure_qwen2_tokenizer() -> Path:
    """Qwen2-7B-Instruct's cached tokenizer.json, built on first use."""
    return ensure_tokenizer(QWEN2)


def build_qwen2_tokenizer(out_dir: Path) -> Path:
    """Qwen2-7B-Instruct's tokenizer.json and tokenizer_config.json, written into ``out_dir``."""
    return write_tokenizer(QWEN2, Path(out_dir))


_USAGE = "usage: python -m qwenchat.models.tokenizer_build OUT_DIR [--model NAME]"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    model: str | None = None
    if "--model" in args:
        at = args.index("--model")
        if at + 1 >= len(args):
            print(_USAGE, file=sys.stderr)
            return 2
        model = args[at + 1]
        del args[at : at + 2]
    if len(args) != 1 or args[0] in ("-h", "--help") or args[0].startswith("-"):
        print(_USAGE, file=sys.stderr)
        return 2
    try:
        spec: ModelSpec = get_model(model)
        path = write_tokenizer(spec, Path(args[0]))
    except QwenchatError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    if spec.tokenizer.simulated:
        print(f"note: {spec.display_name}'s tokenizer is a SIMULATED stand-in", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
