"""The synthetic QAIRT SDK + Genie bundle (SIMULATED), made once per test session, and
helpers that derive other bundles from it.

Small binaries (1 MiB x 4, v79) so pushing them stays fast; the tokenizer is the real Qwen2
tokenizer.json from ``qwenchat.models.tokenizer_build``.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from qwenchat.emulator.bundle import BundlePaths, make_bundle


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory) -> BundlePaths:
    return make_bundle(
        tmp_path_factory.mktemp("synthetic-bundle"), bin_size_mb=1, arch="v79", parts=4
    )


def bundle_variant(out: Path, source: BundlePaths, seed: int) -> Path:
    """Another export of the same shape: the same part names and sizes, other bytes (as
    a re-export of the model would be), and its own copy of the tokenizer. Returns the
    bundle folder."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for part in source.ctx_bins:
        (out / part.name).write_bytes(rng.randbytes(part.stat().st_size))
    shutil.copyfile(source.tokenizer, out / "tokenizer.json")
    return out


def qairt_with_version(out: Path, source_qairt: Path, sdk_yaml: str | None) -> Path:
    """A QAIRT SDK folder sharing the synthetic SDK's files, with its own ``sdk.yaml`` (as a
    real QAIRT SDK has at its root); ``None`` writes none."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "lib"):
        (out / name).symlink_to(source_qairt / name, target_is_directory=True)
    if sdk_yaml is not None:
        (out / "sdk.yaml").write_text(sdk_yaml)
    return out


def export_with_config(out: Path, source: BundlePaths, edit) -> Path:
    """An export that brings its own genie_config.json (push-assets keeps an export's own
    config): the synthetic bundle's parts and tokenizer, linked, and the default model's
    config as ``edit(config_dict)`` leaves it. Returns the folder."""
    import json

    from qwenchat.assets.bundle import model_genie_config
    from qwenchat.models.registry import get_model

    out.mkdir(parents=True)
    for part in source.ctx_bins:
        (out / part.name).symlink_to(part)
    (out / "tokenizer.json").symlink_to(source.tokenizer)
    config = model_genie_config(get_model()).to_json_dict()
    edit(config)
    (out / "genie_config.json").write_text(json.dumps(config))
    return out
