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
