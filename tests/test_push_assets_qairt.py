"""Issue 14.3: the QAIRT pushed to the phone must be the one the context binaries were
compiled with. push-assets reads both versions, records them in the phone's manifest and
warns with the two numbers when they differ."""

from __future__ import annotations

import json
import os

import pytest
from fixtures_bundle import bundle_variant, qairt_with_version

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.qairt_version import (
    binaries_qairt_version,
    qairt_sdk_version,
    versions_match,
)
from qwenchat.cli import app
from qwenchat.cli.errors import run_app

# The shape of a QAIRT SDK's sdk.yaml (name/version/build keys at the top level).
SDK_YAML = """# Copyright (c) Qualcomm Technologies, Inc.
name: qairt
  version: 9.9.9  # nested: not the SDK's
version: 2.31.0.250130
build_id: v2.31.0.250130150235_113596
"""


def test_the_sdk_version_comes_from_sdk_yaml_else_the_folder_name(tmp_path, synthetic_bundle):
    with_yaml = qairt_with_version(tmp_path / "a", synthetic_bundle.qairt, SDK_YAML)
    assert qairt_sdk_version(with_yaml) == ("2.31.0.250130", str(with_yaml / "sdk.yaml"))
    named = qairt_with_version(tmp_path / "qairt" / "2.28.2.241116", synthetic_bundle.qairt, None)
    assert qairt_sdk_version(named) == ("2.28.2.241116", "the folder name 2.28.2.241116")
    plain = qairt_with_version(tmp_path / "sdk", synthetic_bundle.qairt, "name: qairt\n")
    assert qairt_sdk_version(plain) == (None, f"no sdk.yaml with a version in {plain}")


def test_the_binaries_version_comes_from_the_bundles_metadata(tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "manifest.json").write_text(json.dumps(
        {"format": "qwenchat-hub-bundle/1", "tool_versions": {"qairt": "2.28.2"}}
    ))  # fmt: skip
    assert binaries_qairt_version(hub) == ("2.28.2", str(hub / "manifest.json"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "metadata.json").write_text('{"qairt_version": "v2.31.0"}')
    assert binaries_qairt_version(other) == ("2.31.0", str(other / "metadata.json"))
    bare = tmp_path / "bare"
    bare.mkdir()
    assert binaries_qairt_version(bare)[0] is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("2.31.0", "2.31.0.250130", True),
        ("2.31.0.250130", "2.31.0.250130", True),
        ("2.31.0.250130", "2.31.0.250131", False),
        ("2.28.2", "2.31.0", False),
        ("2.31", "2.31.0", True),
    ],
)
def test_versions_match_on_the_numbers_both_give(a, b, same):
    assert versions_match(a, b) is same
    assert versions_match(b, a) is same


def _bundle(tmp_path, synthetic_bundle, compiled: str):
    folder = bundle_variant(tmp_path / "bundle", synthetic_bundle, seed=5)
    sizes = {p.name: {"size": p.stat().st_size} for p in folder.glob("*.bin")}
    (folder / "manifest.json").write_text(json.dumps({
        "format": "qwenchat-hub-bundle/1",
        "model": {"name": "qwen2-7b-instruct"},
        "tool_versions": {"qairt": compiled},
        "files": sizes,
    }))  # fmt: skip
    return folder


def test_a_mismatch_is_warned_with_both_numbers_and_recorded(
    capsys, monkeypatch, emulator, synthetic_bundle, tmp_path
):
    monkeypatch.setenv("COLUMNS", "1000")
    folder = _bundle(tmp_path, synthetic_bundle, "2.28.2")
    qairt = qairt_with_version(tmp_path / "qairt", synthetic_bundle.qairt, SDK_YAML)
    args = ["push-assets", "--bundle", str(folder), "--qairt", str(qairt),
            "--connect", emulator.address, "--transport", "direct"]  # fmt: skip
    code = run_app(app, args)
    _, err = capsys.readouterr()
    assert code == 0, err
    assert (
        f"warning: QAIRT mismatch: the runtime being pushed is QAIRT 2.31.0.250130 "
        f"({qairt}/sdk.yaml), the context binaries were compiled with QAIRT 2.28.2 "
        f"({folder}/manifest.json); Genie may refuse to load them (error 5005). "
        "Use the QAIRT 2.28.2 SDK (--qairt)."
    ) in err.splitlines()
    manifest = json.loads(
        (emulator.config.fs_root / "data/local/tmp/qwenchat/manifest.json").read_text()
    )
    assert manifest["qairt_version"] == "2.31.0.250130"
    assert manifest["binaries_qairt_version"] == "2.28.2"

    code = run_app(app, [*args, "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert report["files_sent"] == 0 and len(report["warnings"]) == 1
    assert "QAIRT 2.31.0.250130" in report["warnings"][0]


def test_matching_versions_give_no_warning(tmp_path, synthetic_bundle):
    folder = _bundle(tmp_path, synthetic_bundle, "2.31.0")
    qairt = qairt_with_version(tmp_path / "qairt", synthetic_bundle.qairt, SDK_YAML)
    plan = plan_bundle(folder, qairt, "SM8750")
    assert plan.warnings == []
    assert (plan.qairt_version, plan.binaries_qairt_version) == ("2.31.0.250130", "2.31.0")


def test_unknown_versions_are_recorded_as_unknown(synthetic_bundle):
    plan = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")
    assert os.path.basename(synthetic_bundle.qairt) == "qairt"  # no version in the name
    assert (plan.qairt_version, plan.binaries_qairt_version, plan.warnings) == (None, None, [])
