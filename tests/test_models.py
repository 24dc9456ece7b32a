"""The model registry and how the phone's bundle names its model."""

from __future__ import annotations

import pytest

from qwenchat.errors import BundleError, UsageError
from qwenchat.manifest import BundleManifest, FileEntry
from qwenchat.models import DEFAULT_MODEL, MODELS, get_model


def test_the_default_is_qwen2_and_names_are_forgiving():
    assert DEFAULT_MODEL == "qwen2-7b-instruct"
    assert get_model() is MODELS[0]
    for spelling in ("qwen2-7b-instruct", "Qwen2-7B-Instruct", "qwen2_7b_instruct", " qwen2 "):
        assert get_model(spelling).display_name == "Qwen2-7B-Instruct"


def test_an_unknown_model_is_one_usage_line_naming_the_known_ones():
    with pytest.raises(UsageError) as err:
        get_model("gpt-9")
    assert "unknown model 'gpt-9'" in err.value.message
    assert "qwen2-7b-instruct" in err.value.hint and err.value.exit_code == 2


def test_names_and_aliases_never_collide():
    seen: set[str] = set()
    for spec in MODELS:
        for name in (spec.name, *spec.aliases):
            key = name.lower().replace("_", "-")
            assert key not in seen, key
            seen.add(key)


def test_the_manifest_keeps_the_model_and_reads_old_manifests():
    manifest = BundleManifest(files={"bundle/a.bin": FileEntry(3, "0" * 64)}, model="qwen2-7b-instruct")
    again = BundleManifest.from_json(manifest.to_json())
    assert again.model == "qwen2-7b-instruct" and again.files == manifest.files
    old = '{"version": 1, "files": {"bundle/a.bin": {"size": 3, "sha256": "' + "0" * 64 + '"}}}'
    assert BundleManifest.from_json(old).model is None


def test_the_phone_names_its_model_and_a_wrong_one_is_refused(bundled_phone):
    from qwenchat.layout import PhoneLayout
    from qwenchat.models.spec import ModelSpec
    from qwenchat.runner.phone_bundle import PhoneBundle

    _, dev = bundled_phone()
    bundle = PhoneBundle(dev, PhoneLayout())
    assert bundle.model.name == "qwen2-7b-instruct"
    other = ModelSpec(**{**get_model().__dict__, "name": "other-7b", "display_name": "Other-7B"})
    with pytest.raises(BundleError) as err:
        bundle.require_model(other)
    assert err.value.message == "the phone holds Qwen2-7B-Instruct, not Other-7B"
    assert "push-assets --model other-7b" in err.value.hint


def test_models_lists_every_model_with_its_figures_and_the_phones(bundled_phone, capsys):
    import json

    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    emu, _ = bundled_phone()
    assert run_app(app, ["models", "--connect", emu.address, "--transport", "direct", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["qwen2-7b-instruct", "qwen2.5-7b-instruct", "llama-v2-7b-chat", "baichuan2-7b"]
    assert rows["qwen2-7b-instruct"]["on_phone"] is True
    assert rows["baichuan2-7b"]["on_phone"] is False
    llama = rows["llama-v2-7b-chat"]
    assert llama["context"] == 1024 and llama["downloadable"] is False
    assert llama["published"]["ttft_ms"] == [1440.0, 1440.0] and llama["published"]["decode_tok_s"] == 17.94
    assert rows["baichuan2-7b"]["published"]["decode_tok_s"] == 7.72
    assert rows["baichuan2-7b"]["tokenizer"] == "SIMULATED stand-in"
    assert rows["qwen2.5-7b-instruct"]["published"]["ttft_ms"] == [135.6538, 4340.9216]


def test_models_without_a_phone_says_so(capsys):
    import json

    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    assert run_app(app, ["models", "--no-phone", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["on_phone"] is None for r in rows)
