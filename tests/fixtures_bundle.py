"""The synthetic QAIRT SDK + Genie bundle (SIMULATED), made once per test session.

Small binaries (1 MiB x 4, v79) so pushing them stays fast; the tokenizer is the real Qwen2
tokenizer.json from ``qwenchat.models.tokenizer_build``.
"""

from __future__ import annotations

import pytest

from qwenchat.emulator.bundle import BundlePaths, make_bundle


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory) -> BundlePaths:
    return make_bundle(
        tmp_path_factory.mktemp("synthetic-bundle"), bin_size_mb=1, arch="v79", parts=4
    )
