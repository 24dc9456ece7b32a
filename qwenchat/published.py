"""Qualcomm's published figures for the models we run, to compare measurements against.

The numbers live in ``qwenchat/data/published_figures.json``, one entry per model (keyed by
``ModelSpec.published_key``) and, within it, one per chip (``getprop ro.soc.model``): perf.yaml
lists figures per device, and a chip's figures judge that chip only. Each names its source
and date; this module only reads them (lazily) and applies the model's published TTFT model:

- ``chunked`` (Qwen2, Qwen2.5, Baichuan2): the prompt processor takes 128 tokens a pass, the
  lower bound is one pass, so TTFT(n) = ceil(n/128) x lower bound (the upper bound, for the
  whole context, is that formula extrapolated, not a measurement);
- ``one-pass`` (Llama-v2-7B-Chat): one pass of the whole 1024-token context for any prompt,
  so TTFT is flat: the same figure for 1 token or 1024.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

from qwenchat.errors import UsageError

TTFT_MODELS = ("chunked", "one-pass")


@dataclass(frozen=True)
class PublishedFigures:
    key: str  # the entry in published_figures.json (ModelSpec.published_key)
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
    ttft_model: str = "chunked"  # "chunked" | "one-pass"
    chunk_size: int = 128  # prompt tokens the prompt processor takes in one pass
    upper_bound_measured: bool = False
    # What the figures are a measurement of (AI Hub profile jobs of the parts, NPU time):
    # every verdict quotes it beside what Genie's profiler measured.
    measured_as: str = ""

    def expected_ttft_ms(self, n_prompt_tokens: int) -> float:
        """The published TTFT for a prompt of ``n_prompt_tokens`` under the model's TTFT model."""
        if n_prompt_tokens < 1:
            raise ValueError(f"a prompt has at least 1 token, not {n_prompt_tokens}")
        if n_prompt_tokens > self.context_length:
            raise ValueError(
                f"{n_prompt_tokens} prompt tokens exceed the {self.context_length}-token context"
            )
        return self.passes(n_prompt_tokens) * self.ttft_min_ms

    def passes(self, n_prompt_tokens: int) -> int:
        """Prompt-processor passes for ``n_prompt_tokens``: one per started chunk."""
        return math.ceil(n_prompt_tokens / self.chunk_size)

    def padded_tokens(self, n_prompt_tokens: int) -> int:
        """Tokens the NPU actually processes: whole passes."""
        return self.passes(n_prompt_tokens) * self.chunk_size

    @property
    def ttft_formula(self) -> str:
        """The TTFT model in a few words, for report headers."""
        if self.ttft_model == "one-pass":
            return f"{self.ttft_min_ms:.10g} ms flat (one {self.chunk_size}-token pass)"
        return f"ceil(n/{self.chunk_size}) x {self.ttft_min_ms:.10g} ms"

    @property
    def prompt_tok_s(self) -> float:
        """The prompt-processing rate the published lower bound implies (padded tokens)."""
        return self.chunk_size / (self.ttft_min_ms / 1000.0)

    @property
    def published_upper_is_extrapolated(self) -> str:
        """What the published upper bound is, in one sentence (a report note)."""
        if self.ttft_model == "one-pass":
            return (
                f"The published TTFT ({self.ttft_min_ms:.10g} ms) is one {self.chunk_size}-token "
                f"pass of the prompt processor: the same for any prompt up to "
                f"{self.context_length} tokens, so both bounds of the range are equal."
            )
        passes = self.context_length // self.chunk_size
        return (
            f"The published upper TTFT bound ({self.ttft_max_ms:.10g} ms) is not a measurement: "
            f"it is the lower bound ({self.ttft_min_ms:.10g} ms, one {self.chunk_size}-token pass) "
            f"x {passes} passes for a full {self.context_length}-token context."
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _data() -> dict[str, Any]:
    text = (resources.files("qwenchat") / "data" / "published_figures.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def published_models() -> list[str]:
    return sorted(_data()["models"])


def harness() -> str:
    """How Qualcomm measured (one line, for reports)."""
    return str(_data().get("harness", ""))


def _figures(key: str, entry: dict[str, Any], soc: str, chip: dict[str, Any]) -> PublishedFigures:
    ttft_model = entry.get("ttft_model", "chunked")
    if ttft_model not in TTFT_MODELS:  # a typo in the data must not become a wrong verdict
        raise ValueError(f"published_figures.json: {key}: unknown ttft_model {ttft_model!r}")
    return PublishedFigures(
        key=key,
        model=entry["model"],
        device=chip["device"],
        soc=soc,
        precision=entry["precision"],
        context_length=int(entry["context_length"]),
        ttft_min_ms=float(chip["ttft_min_ms"]),
        ttft_max_ms=float(chip["ttft_max_ms"]),
        decode_tok_s=float(chip["decode_tok_s"]),
        source=chip["source"],
        date=chip["date"],
        range_definition=entry["range_definition"],
        ttft_model=ttft_model,
        chunk_size=int(entry.get("prompt_pass_tokens", 128)),
        upper_bound_measured=bool(entry.get("upper_bound_measured", False)),
        measured_as=str(_data().get("measured_as", "")),
    )


def published_chips(key: str | None) -> list[PublishedFigures]:
    """Every chip's figures for the model under ``key``, in the file's order (the first is
    the chip Qualcomm lists the model for: the 8 Elite); [] when there are none."""
    if key is None:
        return []
    entry = _data()["models"].get(_key(key))
    if entry is None:
        return []
    return [_figures(_key(key), entry, soc, chip) for soc, chip in entry["chips"].items()]


def published_for(key: str | None, soc: str | None) -> PublishedFigures | None:
    """The figures Qualcomm published for this model on this chip, or None: no figure for
    that chip (or an unknown chip) means no verdict, whatever other chips have."""
    if soc is None:
        return None
    wanted = soc.strip().upper()
    return next((f for f in published_chips(key) if f.soc == wanted), None)


def find_published(key: str | None) -> PublishedFigures | None:
    """The model's figures on the chip Qualcomm lists it for first (for listings, never a
    verdict on a phone: use ``published_for``), or None when there are none."""
    chips = published_chips(key)
    return chips[0] if chips else None


def published_figures(key: str) -> PublishedFigures:
    """The figures under ``key``; UsageError naming the known ones when there are none."""
    found = find_published(key)
    if found is None:
        raise UsageError(
            f"no published figures for {key!r}",
            hint=f"Known: {', '.join(published_models())}.",
        )
    return found
