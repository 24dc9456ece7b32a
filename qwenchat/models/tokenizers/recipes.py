"""Which builder makes which ``TokenizerSource.kind``, from which vocabulary files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.models.tokenizers import baichuan2_standin, llama2, qwen

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class Recipe:
    kind: str
    # The vocabulary files the build reads; raises ConfigError (saying what to install)
    # when one is missing.
    sources: Callable[[], tuple[Path, ...]]
    # sources -> (tokenizers.Tokenizer, tokenizer_config.json without its chat template)
    build: Callable[[tuple[Path, ...]], tuple[Tokenizer, dict[str, Any]]]
    # Libraries whose version can change the output.
    packages: tuple[str, ...]


RECIPES: dict[str, Recipe] = {
    recipe.kind: recipe
    for recipe in (
        Recipe(
            "qwen-tiktoken",
            qwen.sources,
            qwen.build_qwen2,
            ("tokenizers", "transformers", "tiktoken"),
        ),
        Recipe(
            "qwen2.5-tiktoken",
            qwen.sources,
            qwen.build_qwen2_5,
            ("tokenizers", "transformers", "tiktoken"),
        ),
        Recipe("llama2-sentencepiece", llama2.sources, llama2.build, ("tokenizers",)),
        Recipe(
            "baichuan2-standin",
            baichuan2_standin.sources,
            baichuan2_standin.build,
            ("tokenizers", "transformers", "tiktoken"),
        ),
    )
}
