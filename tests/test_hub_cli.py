"""`qwenchat fetch` and `push-assets --hub` through the real CLI; only the store is recorded."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("qai_hub_models_cli", reason="pip install 'qwenchat[hub]'")

from test_hub_fetch import RecordedFetcher  # noqa: E402

from qwenchat.cli import app  # noqa: E402
from qwenchat.cli.errors import run_app  # noqa: E402


@pytest.fixture
def recorded_store(tmp_path, monkeypatch):
    monkeypatch.setenv("QWENCHAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("qwenchat.hub.transport.RequestsFetcher", RecordedFetcher)
    return tmp_path / "cache"


def test_fetch_json_prints_the_bundle(recorded_store, capsys):
    assert run_app(app, ["fetch", "--chipset", "SM8750", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bundle"].startswith(str(recorded_store / "hub"))
    assert [f["name"] for f in out["files"]] == [
        f"weight_sharing_model_{n}_of_4.serialized.bin" for n in range(1, 5)
    ]


def test_fetch_unsupported_chip_is_one_red_line(recorded_store, capsys):
    assert run_app(app, ["fetch", "--chipset", "SM8550"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and "8 Elite" in err


def test_push_assets_needs_a_bundle_or_hub(capsys):
    assert run_app(app, ["push-assets"]) == 2
    assert "--hub" in capsys.readouterr().err
