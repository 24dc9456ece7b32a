"""Qualcomm's published figures for the models we run, to compare measurements against.

The numbers live in ``qwenchat/data/published_figures.json`` with their source and date;
this module only reads them (lazily) and applies the published TTFT model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from qwenchat.errors import UsageError

DEFAULT_MODEL = "qwen2-7b-instruct"


@dataclass(frozen=True)
class PublishedFigures:
    model: str
    device: str
    soc: str
    precision: str
    context_length: int
    ttft_min_ms: float
    ttft_max_ms: float
    decode_tok_s: float
    source: str
    date: str
    range_definition: str
    upper_bound_measured: bool = False
    chunk_size: int = 128  # the prompt processor handles 128 tokens per pass

    def expected_ttft_ms(self, n_prompt_tokens: int) -> float:
        """The published model: one lower-bound pass per started 128-token chunk."""
        if n_prompt_tokens < 1:
            raise ValueError(f"a prompt has at least 1 token, not {n_prompt_tokens}")
        if n_prompt_tokens > self.context_length:
            raise ValueError(
                f"{n_prompt_tokens} prompt tokens exceed the {self.context_length}-token context"
            )
        return math.ceil(n_prompt_tokens / self.chunk_size) * self.ttft_min_ms

    @property
    def prompt_tok_s(self) -> float:
        """The prompt-processing rate the published lower bound implies."""
        return self.chunk_size / (self.ttft_min_ms / 1000.0)

    @property
    def published_upper_is_extrapolated(self) -> str:
        passes = self.context_length // self.chunk_size
        return (
            f"The published upper TTFT bound ({self.ttft_max_ms:g} ms) is not a measurement: "
            f"it is the lower bound ({self.ttft_min_ms:g} ms, one {self.chunk_size}-token pass) "
            f"x {passes} passes for a full {self.context_length}-token context."
        )


@cache
def _data() -> dict[str, Any]:
    text = (resources.files("qwenchat") / "data" / "published_figures.json").read_text("utf-8")
    return json.loads(text)


def published_models() -> list[str]:
    return sorted(_data()["models"])


def published_figures(model: str = DEFAULT_MODEL) -> PublishedFigures:
    data = _data()
    key = model.strip().lower()
    entry = data["models"].get(key)
    if entry is None:
        raise UsageError(
            f"no published figures for {model!r}",
            hint=f"Known: {', '.join(published_models())}.",
        )
    return PublishedFigures(
        model=entry["model"],
        device=entry["device"],
        soc=entry["soc"],
        precision=entry["precision"],
        context_length=int(entry["context_length"]),
        ttft_min_ms=float(entry["ttft_min_ms"]),
        ttft_max_ms=float(entry["ttft_max_ms"]),
        decode_tok_s=float(entry["decode_tok_s"]),
        source=data["source"],
        date=data["date"],
        range_definition=data["range_definition"],
        upper_bound_measured=bool(entry.get("upper_bound_measured", False)),
        chunk_size=int(data.get("chunk_size", 128)),
    )
