"""``qwenchat models``: every model qwenchat runs, what Qualcomm publishes for it, and which
one the phone holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qwenchat.device.base import Device
from qwenchat.errors import QwenchatError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest
from qwenchat.models.registry import MODELS
from qwenchat.models.spec import ModelSpec
from qwenchat.published import PublishedFigures, published_chips
from qwenchat.soc import soc_name


@dataclass
class ModelRow:
    name: str
    display_name: str
    hub_id: str
    context: int
    published_chips: list[str]
    downloadable: bool
    tokenizer: str  # "real" or "SIMULATED stand-in"
    published: dict[str, Any] | None  # figures with their source and date; None: none found
    on_phone: bool | None  # None: no phone was asked
    # The same model's figures on the other chips perf.yaml lists (each judges its chip only).
    published_other_chips: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def phone_model(device: Device, layout: PhoneLayout | None = None) -> str | None:
    """The model name the phone's bundle was pushed for (None: no bundle there)."""
    layout = layout or PhoneLayout()
    if device.stat(layout.manifest_path) is None:
        return None
    try:
        manifest = BundleManifest.from_json(device.pull_bytes(layout.manifest_path))
    except QwenchatError:
        return None
    return manifest.model or MODELS[0].name


def model_rows(on_phone: str | None = None, asked_phone: bool = False) -> list[ModelRow]:
    return [_row(spec, on_phone, asked_phone) for spec in MODELS]


def _figures(f: PublishedFigures) -> dict[str, Any]:
    return {
        "soc": f.soc,
        "device": f.device,
        "ttft_ms": [f.ttft_min_ms, f.ttft_max_ms],
        "ttft_model": f.ttft_formula,
        "decode_tok_s": f.decode_tok_s,
        "source": f.source,
        "date": f.date,
    }


def _row(spec: ModelSpec, on_phone: str | None, asked_phone: bool) -> ModelRow:
    chips = published_chips(spec.published_key)
    return ModelRow(
        name=spec.name,
        display_name=spec.display_name,
        hub_id=spec.hub.model_id,
        context=spec.context_size,
        published_chips=[f"{s} ({soc_name(s)})" for s in spec.hub.published_socs],
        downloadable=spec.hub.downloadable,
        tokenizer="SIMULATED stand-in" if spec.tokenizer.simulated else "real",
        published=_figures(chips[0]) if chips else None,
        on_phone=(on_phone == spec.name) if asked_phone else None,
        published_other_chips=[_figures(f) for f in chips[1:]],
    )
