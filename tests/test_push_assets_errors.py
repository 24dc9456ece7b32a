"""Bad input and faults: one clear message, nothing corrupted. Bundles are real files; the
CLI runs as `qwenchat` runs it (run_app, or a subprocess for the no-phone case)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.errors import BundleError, ConfigError

WORK = "/data/local/tmp/qwenchat"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_export(folder, sizes: dict[str, int], tokenizer=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        (folder / name).write_bytes(os.urandom(size))
    if tokenizer is not None:
        (folder / "tokenizer.json").symlink_to(tokenizer)
    return folder


def test_part_patterns_are_ordered_by_part_number(tmp_path, synthetic_bundle):
    tok = synthetic_bundle.tokenizer
    for names in (
        [f"qwen2_7b_part_{n}_of_4.bin" for n in (3, 1, 4, 2)],
        [f"part{n}_of_4.bin" for n in (2, 4, 3, 1)],
    ):
        export = make_export(tmp_path / names[0], dict.fromkeys(names, 3000), tok)
        plan = plan_bundle(export, synthetic_bundle.qairt, "SM8750")
        assert [n.split("_of_")[0][-1] for n in plan.ctx_bins] == ["1", "2", "3", "4"]
        config = json.loads(plan.file("bundle/genie_config.json").data)
        assert config["dialog"]["engine"]["model"]["binary"]["ctx-bins"] == plan.ctx_bins


def test_a_bundle_genie_config_is_respected(tmp_path, synthetic_bundle):
    export = make_export(tmp_path / "e", {"b.bin": 2000, "a.bin": 2000}, synthetic_bundle.tokenizer)
    from qwenchat.genie.config import qwen2_genie_config

    config = qwen2_genie_config().to_json_dict()
    config["dialog"]["engine"]["model"]["binary"]["ctx-bins"] = ["b.bin", "a.bin"]
    config["dialog"]["sampler"]["top-k"] = 7
    (export / "genie_config.json").write_text(json.dumps(config))
    plan = plan_bundle(export, synthetic_bundle.qairt, "SM8750", seed=3)
    assert plan.ctx_bins == ["b.bin", "a.bin"]  # its order, though "a" sorts first
    rendered = json.loads(plan.file("bundle/genie_config.json").data)
    assert (
        rendered["dialog"]["sampler"]["top-k"] == 7 and rendered["dialog"]["sampler"]["seed"] == 3
    )
    (export / "a.bin").unlink()
    with pytest.raises(BundleError, match="a.bin named in .*genie_config.json is missing"):
        plan_bundle(export, synthetic_bundle.qairt, "SM8750")


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({}, "no context binaries"),
        (
            {
                "weight_sharing_model_1_of_4.serialized.bin": 900,
                "weight_sharing_model_3_of_4.serialized.bin": 900,
            },
            "missing part 2_of_4, 4_of_4",
        ),
        ({"part1_of_2.bin": 900, "part2_of_2.bin": 0}, "part2_of_2.bin is empty"),
        (
            {"part1_of_3.bin": 1000, "part2_of_3.bin": 1000, "part3_of_3.bin": 400},
            "part3_of_3.bin is 400 bytes, less than half the median part size",
        ),
        ({"x.bin": 10, "y.bin": 10}, "cannot tell the order"),
        ({"p_part_1_of_2.bin": 9, "part1_of_3.bin": 9}, "different exports mixed"),
    ],
)
def test_bad_exports_are_refused_with_the_reason(tmp_path, synthetic_bundle, sizes, message):
    export = make_export(tmp_path / "e", sizes, synthetic_bundle.tokenizer)
    with pytest.raises(BundleError, match=message):
        plan_bundle(export, synthetic_bundle.qairt, "SM8750")


def test_size_recorded_in_the_bundle_manifest_is_enforced(tmp_path, synthetic_bundle):
    export = make_export(tmp_path / "e", {"part1_of_1.bin": 5000}, synthetic_bundle.tokenizer)
    (export / "manifest.json").write_text(json.dumps({"files": {"part1_of_1.bin": {"size": 6000}}}))
    with pytest.raises(BundleError, match="is 5,000 bytes, the bundle's manifest.json says 6,000"):
        plan_bundle(export, synthetic_bundle.qairt, "SM8750")


def test_missing_inputs_name_what_is_missing(tmp_path, synthetic_bundle):
    with pytest.raises(BundleError, match="bundle folder not found"):
        plan_bundle(tmp_path / "nope", synthetic_bundle.qairt, "SM8750")
    export = make_export(tmp_path / "e", {f"part{n}_of_4.bin": 100 for n in (1, 2, 3, 4)})
    with pytest.raises(BundleError, match="no tokenizer.json in"):
        plan_bundle(export, synthetic_bundle.qairt, "SM8750")
    plan = plan_bundle(
        export, synthetic_bundle.qairt, "SM8750", tokenizer=synthetic_bundle.tokenizer
    )
    assert plan.file("bundle/tokenizer.json").local == synthetic_bundle.tokenizer
    with pytest.raises(BundleError, match="QAIRT SDK folder not found"):
        plan_bundle(synthetic_bundle.bundle, tmp_path / "no-sdk", "SM8750")
    # The synthetic SDK only has v79 files: a Snapdragon 8 Gen 3 (v75) needs its own.
    with pytest.raises(
        BundleError, match=r"lacks lib/aarch64-android/libQnnHtpV75Stub.so for Hexagon v75"
    ):
        plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8650")
    with pytest.raises(ConfigError, match="unsupported SoC 'SM0000'"):
        plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM0000")


def test_cli_no_phone_is_one_red_line(tmp_path, synthetic_bundle):
    env = {**os.environ, "QWENCHAT_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenchat",
            "push-assets",
            "--bundle",
            str(synthetic_bundle.bundle),
            "--qairt",
            str(synthetic_bundle.qairt),
            "--transport",
            "direct",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: no phone")
    assert len([x for x in result.stderr.splitlines() if x.startswith("error:")]) == 1


def test_cli_push_then_unchanged_json(capsys, emulator, synthetic_bundle):
    args = [
        "push-assets",
        "--bundle",
        str(synthetic_bundle.bundle),
        "--qairt",
        str(synthetic_bundle.qairt),
        "--connect",
        emulator.address,
        "--transport",
        "direct",
        "--json",
        "--temp",
        "0.6",
    ]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    first = json.loads(out)
    assert first["files_sent"] == 16 and first["simulated"] and first["bytes_sent"] > 0
    code, out, _ = cli(capsys, *args)
    again = json.loads(out)
    assert (again["files_sent"], again["files_skipped"]) == (0, 16)
    assert again["host_files_hashed"] == 0 and again["phone_files_hashed"] == 0
    config = json.loads(
        (emulator.config.fs_root / WORK.lstrip("/") / "bundle/genie_config.json").read_text()
    )
    assert config["dialog"]["sampler"]["temp"] == 0.6
    code, out, _ = cli(capsys, *args[:-3], "--verify")  # human output
    assert code == 0 and "verified: all 16 file(s) re-hashed on the host and the phone" in out
    assert "SIMULATED" in out


def test_cli_disk_full_is_refused_with_numbers(capsys, emulator_factory, adb_key, synthetic_bundle):
    emu = emulator_factory(authorized_keys=[adb_key], free_mb=4)
    code, _, err = cli(
        capsys,
        "push-assets",
        "--bundle",
        str(synthetic_bundle.bundle),
        "--qairt",
        str(synthetic_bundle.qairt),
        "--connect",
        emu.address,
        "--transport",
        "direct",
    )
    assert code == 1 and "Traceback" not in err
    line = err.splitlines()[0]
    assert line.startswith("error: needs 12.") and f"MB free in {WORK}" in line
    bundle = emu.config.fs_root / WORK.lstrip("/") / "bundle"
    assert not bundle.exists() or not any(bundle.iterdir())
