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
