"""The phone's bundle as a run reads it: manifest and config in one round trip, the tokenizer
known by the manifest's digest, and nothing stale after another computer pushed.

Failure modes, each tested on the emulated phone:
- a bundle pushed by another computer with another tokenizer: the host's copy of the old
  one is used (the digest must come from the phone's current manifest);
- the config or manifest text is cut or altered by the one-round-trip read (a file without
  a final newline, a file with one);
- an absent manifest reads as present, an absent config is not the clear BundleError;
- reading config, manifest and a known tokenizer costs more than one round trip.

Oracle: the bytes written on the host and pushed, compared as bytes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from fixtures_device import push_bundle

from qwenchat.errors import BundleError
from qwenchat.layout import PhoneLayout
from qwenchat.runner.phone_bundle import PhoneBundle


def _count_round_trips(dev) -> list[str]:
    calls: list[str] = []
    for name in ("shell", "stat", "pull_bytes"):  # (shell streams internally)
        real = getattr(dev, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls.append(_name)
            return _real(*args, **kwargs)

        setattr(dev, name, wrapped)
    return calls


def test_another_computers_push_with_another_tokenizer_is_seen(
    bundled_phone, synthetic_bundle, tmp_path, monkeypatch
):
    _, dev = bundled_phone()
    first = PhoneBundle(dev).tokenizer_file()
    assert first.read_bytes() == synthetic_bundle.tokenizer.read_bytes()

    # Another computer (its own QWENCHAT_HOME) pushes a bundle whose tokenizer has other bytes.
    other = tmp_path / "other-export"
    shutil.copytree(synthetic_bundle.bundle, other)
    data = json.loads(synthetic_bundle.tokenizer.read_text(encoding="utf-8"))
    other_tok = tmp_path / "other-tokenizer.json"
    other_tok.write_text(json.dumps(data, indent=1), encoding="utf-8")
    variant = dataclasses.replace(synthetic_bundle, bundle=other, tokenizer=other_tok)
    monkeypatch.setenv("QWENCHAT_HOME", str(tmp_path / "other-computer"))
    push_bundle(dev, variant)
    monkeypatch.undo()

    again = PhoneBundle(dev)
    calls = _count_round_trips(dev)
    seen = again.tokenizer_file()
    assert seen.read_bytes() == other_tok.read_bytes() != first.read_bytes()
    assert calls.count("shell") >= 1  # new digest: hashed or pulled, not taken from the cache

    # Known now: config, manifest and tokenizer in one round trip.
    third = PhoneBundle(dev)
    calls = _count_round_trips(dev)
    assert third.tokenizer_file() == seen
    assert third.manifest_bytes is not None and third.config.tokenizer_path
    assert calls == ["shell"]


def test_texts_read_exactly_and_absence_is_clear(bundled_phone):
    _, dev = bundled_phone(push=False)
    layout = PhoneLayout()
    config = b'{"dialog": {"version": 1, "type": "basic"}}'  # no final newline
    dev.shell(f"mkdir -p {layout.bundle_dir}")
    dev.push_bytes(config, layout.config_path)
    bundle = PhoneBundle(dev, layout)
    assert bundle._texts == {"manifest": None, "config": config}

    dev.push_bytes(b"{}\n\n", layout.manifest_path)  # trailing newlines kept as they are
    assert PhoneBundle(dev, layout)._texts["manifest"] == b"{}\n\n"

    dev.shell(f"rm -f {layout.config_path}")
    with pytest.raises(BundleError, match="no Genie bundle on the phone"):
        _ = PhoneBundle(dev, layout).config
