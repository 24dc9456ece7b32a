"""``qwenchat models``: every model qwenchat runs, what Qualcomm publishes for it, and which
one the phone holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qwenchat.device.base import Device
from qwenchat.errors import QwenchatError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest
from qwenchat.models.registry import MODELS
from qwenchat.models.spec import ModelSpec
from qwenchat.published import find_published
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


def _row(spec: ModelSpec, on_phone: str | None, asked_phone: bool) -> ModelRow:
    figures = find_published(spec.published_key)
    published = None
    if figures is not None:
        published = {
            "device": figures.device,
            "ttft_ms": [figures.ttft_min_ms, figures.ttft_max_ms],
            "ttft_model": figures.ttft_formula,
            "decode_tok_s": figures.decode_tok_s,
            "source": figures.source,
            "date": figures.date,
        }
    return ModelRow(
        name=spec.name,
        display_name=spec.display_name,
        hub_id=spec.hub.model_id,
        context=spec.context_size,
        published_chips=[f"{s} ({soc_name(s)})" for s in spec.hub.published_socs],
        downloadable=spec.hub.downloadable,
        tokenizer="SIMULATED stand-in" if spec.tokenizer.simulated else "real",
        published=published,
        on_phone=(on_phone == spec.name) if asked_phone else None,
    )
