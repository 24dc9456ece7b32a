"""Issues 16 and 18: every bad input to push-assets is one line saying what is wrong, exit 2
for usage (a value or path typed wrong) and 1 for a bad file, before any phone is needed
(``--soc`` given), and nothing reaches the phone. Inputs are real files; expected lines are
written out by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.models.registry import get_model

QWEN2_BINS = [f"weight_sharing_model_{n}_of_4.serialized.bin" for n in (1, 2, 3, 4)]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def export(folder: Path, synthetic_bundle, names=QWEN2_BINS, size=2000, tokenizer=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(os.urandom(size))
    if tokenizer:
        (folder / "tokenizer.json").symlink_to(synthetic_bundle.tokenizer)
    return folder


def other_models_tokenizer(path: Path) -> Path:
    """A Llama-2-shaped tokenizer.json: 32,000 tokens, <s> and </s>, no ChatML tokens."""
    vocab = {f"tok{i}": i for i in range(32000)}
    vocab.update({"<unk>": 0, "<s>": 1, "</s>": 2})
    path.write_text(
        json.dumps(
            {
                "version": "1.0",
                "added_tokens": [{"id": i, "content": t, "special": True}
                                 for i, t in enumerate(("<unk>", "<s>", "</s>"))],
                "model": {"type": "BPE", "vocab": vocab, "merges": []},
            }
        )
    )  # fmt: skip
    return path


def qwen2_config() -> dict:
    from qwenchat.genie.config import qwen2_genie_config

    return qwen2_genie_config().to_json_dict()


def _case(tmp: Path, sb, name: str) -> tuple[list[str], int, str]:
    """(arguments after the bundle/qairt defaults, exit code, the error line)."""
    bundle, qairt = str(sb.bundle), str(sb.qairt)
    if name == "context-size":
        return ["--bundle", bundle, "--qairt", qairt, "--context-size", "99999999"], 2, (
            "--context-size 99999999: Qwen2-7B-Instruct's context binaries hold at most 4096 "
            "tokens"
        )
    if name == "context-size-zero":
        return ["--bundle", bundle, "--qairt", qairt, "--context-size", "0"], 2, (
            "--context-size 0: Qwen2-7B-Instruct's context binaries hold at most 4096 tokens"
        )
    if name == "max-tokens":
        return ["--bundle", bundle, "--qairt", qairt, "--max-tokens", "5000"], 2, (
            "--max-tokens 5000: must be from 1 to the context size (4096)"
        )
    if name == "top-p":
        return ["--bundle", bundle, "--qairt", qairt, "--top-p", "1.5"], 2, (
            "--top-p 1.5: must be from 0 to 1"
        )
    if name == "soc":
        return ["--bundle", bundle, "--qairt", qairt, "--soc", "SM0000"], 2, (
            "--soc SM0000: unsupported SoC 'SM0000': qwenchat knows SM8550 (Snapdragon 8 Gen 2), "
            "SM8650 (Snapdragon 8 Gen 3), SM8750 (Snapdragon 8 Elite), SC8380 (Snapdragon X "
            "Elite / X Plus)"
        )
    if name == "model":
        return ["--bundle", bundle, "--qairt", qairt, "--model", "gpt-9"], 2, (
            "unknown model 'gpt-9'"
        )
    if name == "device-dir":
        return ["--bundle", bundle, "--qairt", qairt, "--device-dir", "qwenchat"], 2, (
            "--device-dir must be an absolute path on the phone, not 'qwenchat'"
        )
    if name == "bundle-missing":
        return ["--bundle", str(tmp / "nope"), "--qairt", qairt], 2, (
            f"--bundle {tmp / 'nope'} does not exist"
        )
    if name == "bundle-is-a-file":
        return ["--bundle", str(sb.tokenizer), "--qairt", qairt], 2, (
            f"--bundle {sb.tokenizer} is a file, not a folder"
        )
    if name == "bundle-empty":
        (tmp / "empty").mkdir()
        return ["--bundle", str(tmp / "empty"), "--qairt", qairt], 1, (
            f"no context binaries (*.bin) in {tmp / 'empty'}"
        )
    if name == "qairt-missing":
        return ["--bundle", bundle, "--qairt", str(tmp / "sdk")], 2, (
            f"--qairt {tmp / 'sdk'} does not exist (QAIRT SDK folder not found)"
        )
    if name == "qairt-empty":
        (tmp / "sdk").mkdir()
        return ["--bundle", bundle, "--qairt", str(tmp / "sdk")], 1, (
            f"QAIRT SDK in {tmp / 'sdk'} lacks bin/aarch64-android/genie-t2t-run for Hexagon "
            "v79 (and 7 more)"
        )
    if name == "tokenizer-missing":
        folder = export(tmp / "e", sb, tokenizer=False)
        return ["--bundle", str(folder), "--qairt", qairt, "--tokenizer", str(tmp / "t.json")], 2, (
            f"--tokenizer {tmp / 't.json'} does not exist"
        )
    if name == "tokenizer-not-json":
        folder = export(tmp / "e", sb, tokenizer=False)
        tok = folder / "tokenizer.json"
        tok.write_bytes(sb.tokenizer.read_bytes()[:5000])  # a copy cut short
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"tokenizer {tok} is not valid JSON (line 1, column "  # ...
        )
    if name == "tokenizer-not-a-tokenizer":
        folder = export(tmp / "e", sb, tokenizer=False)
        (folder / "tokenizer.json").write_text('{"vocab_size": 151646}')
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"tokenizer {folder / 'tokenizer.json'} is JSON but not a Hugging Face "
            "tokenizer.json (no model.vocab section)"
        )
    if name == "tokenizer-of-another-model":
        folder = export(tmp / "e", sb, tokenizer=False)
        tok = other_models_tokenizer(folder / "tokenizer.json")
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"tokenizer {tok} is not Qwen2-7B-Instruct's: 32,000 tokens (it needs 151,646) and "
            "no <|im_end|> token"
        )
    if name == "tokenizer-unreadable":
        folder = export(tmp / "e", sb, tokenizer=False)
        # A file every read of which fails with EIO, even for root (tests may run as root,
        # for whom chmod 000 changes nothing).
        (folder / "tokenizer.json").symlink_to("/proc/self/mem")
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"cannot read tokenizer {folder / 'tokenizer.json'}: Input/output error"
        )
    if name == "genie-config-not-json":
        folder = export(tmp / "e", sb)
        (folder / "genie_config.json").write_text("{dialog: 1}")
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"{folder / 'genie_config.json'}: invalid JSON at line 1, column 2: Expecting "
            "property name enclosed in double quotes"
        )
    if name == "genie-config-of-another-model":
        folder = export(tmp / "e", sb)
        config = qwen2_config()
        config["dialog"]["context"].update({"n-vocab": 32000, "bos-token": 1, "eos-token": 2})
        (folder / "genie_config.json").write_text(json.dumps(config))
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"{folder / 'genie_config.json'} is for another model: eos [2]; "
            "Qwen2-7B-Instruct ends a turn with <|im_end|> = [151645]"
        )
    if name == "parts-of-another-model":
        names = [f"weight_sharing_model_{n}_of_5.serialized.bin" for n in range(1, 6)]
        folder = export(tmp / "e", sb, names=names)
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"the export in {folder} has 5 parts; Qwen2-7B-Instruct's has 4: it looks like "
            "another model's"
        )
    if name == "fetched-for-another-model":
        folder = export(tmp / "e", sb)
        (folder / "manifest.json").write_text(json.dumps(
            {"format": "qwenchat-hub-bundle/1", "model": {"name": "baichuan2-7b"}}
        ))  # fmt: skip
        # Without --model the bundle's own metadata would name the model (Baichuan2-7B,
        # whose 5 parts this export lacks); naming Qwen2 makes the clash the message.
        return ["--bundle", str(folder), "--qairt", qairt, "--model", "qwen2-7b-instruct"], 1, (
            f"the bundle in {folder} was made for Baichuan2-7B, not Qwen2-7B-Instruct"
        )
    if name == "truncated-part":
        folder = export(tmp / "e", sb)
        (folder / QWEN2_BINS[2]).write_bytes(os.urandom(1000))
        recorded = {n: {"size": 2000} for n in QWEN2_BINS}
        (folder / "manifest.json").write_text(json.dumps({"files": recorded}))
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"context binary {QWEN2_BINS[2]} is 1,000 bytes, the bundle's manifest.json says 2,000"
        )
    if name == "odd-file-name":
        names = [f"my model_part_{n}_of_4.bin" for n in (1, 2, 3, 4)]
        folder = export(tmp / "e", sb, names=names)
        return ["--bundle", str(folder), "--qairt", qairt], 1, (
            f"cannot push {folder / names[0]}: its name 'my model_part_1_of_4.bin' has "
            "characters the phone's tools handle badly"
        )
    raise AssertionError(name)


CASES = [
    "context-size", "context-size-zero", "max-tokens", "top-p", "soc", "model", "device-dir",
    "bundle-missing", "bundle-is-a-file", "bundle-empty", "qairt-missing", "qairt-empty",
    "tokenizer-missing", "tokenizer-not-json", "tokenizer-not-a-tokenizer",
    "tokenizer-of-another-model", "tokenizer-unreadable", "genie-config-not-json",
    "genie-config-of-another-model", "parts-of-another-model", "fetched-for-another-model",
    "truncated-part", "odd-file-name",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    # Rich wraps at 80 columns when stderr is not a terminal; a wide one keeps each
    # message on the one line it is.
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_before_any_phone(capsys, tmp_path, synthetic_bundle, name):
    args, code, line = _case(tmp_path, synthetic_bundle, name)
    if "--soc" not in args:
        args += ["--soc", "SM8750"]  # plan before looking for a phone (there is none)
    got, out, err = cli(capsys, "push-assets", *args)
    assert "Traceback" not in err and out == ""
    lines = err.splitlines()
    assert len(lines) == 2 and lines[1].startswith("hint: "), err  # one line, one hint
    assert lines[0].startswith("error: " + line), lines[0]
    assert got == code, err


def test_a_truncated_tokenizer_says_so(tmp_path, synthetic_bundle):
    from qwenchat.errors import BundleError

    folder = export(tmp_path / "e", synthetic_bundle, tokenizer=False)
    (folder / "tokenizer.json").write_bytes(synthetic_bundle.tokenizer.read_bytes()[:-40])
    with pytest.raises(BundleError) as info:
        plan_bundle(folder, synthetic_bundle.qairt, "SM8750")
    assert info.value.message.endswith(": the file looks truncated")


def test_an_option_push_assets_does_not_have_is_a_usage_error(capsys, synthetic_bundle):
    code, _, err = cli(capsys, "push-assets", "--bundle", str(synthetic_bundle.bundle),
                       "--arch", "v99")  # fmt: skip
    assert code == 2 and "Traceback" not in err and "--arch" in err


def test_a_bad_tokenizer_is_not_pushed_over_a_good_one(
    capsys, emulator, synthetic_bundle, tmp_path
):
    """The issue's case: a non-JSON tokenizer.json used to replace the phone's good one."""
    where = ["--qairt", str(synthetic_bundle.qairt), "--connect", emulator.address,
             "--transport", "direct", "--json"]  # fmt: skip
    code, _, err = cli(capsys, "push-assets", "--bundle", str(synthetic_bundle.bundle), *where)
    assert code == 0, err
    folder = export(tmp_path / "e", synthetic_bundle, tokenizer=False)
    for n in QWEN2_BINS:
        (folder / n).write_bytes((synthetic_bundle.bundle / n).read_bytes())
    (folder / "tokenizer.json").write_text("<html>404 Not Found</html>")
    code, out, err = cli(capsys, "push-assets", "--bundle", str(folder), *where)
    assert code == 1 and out == "" and err.count("error:") == 1
    phone_tok = emulator.config.fs_root / "data/local/tmp/qwenchat/bundle/tokenizer.json"
    assert phone_tok.read_bytes() == synthetic_bundle.tokenizer.read_bytes()


def test_the_bundle_is_assembled_from_the_named_models_config(tmp_path, synthetic_bundle):
    """plan_bundle takes the spec: its Genie config is genie_configs/<spec.genie_config>,
    not always Qwen2's (here Qualcomm's Qwen2.5 config, for a spec made for the test)."""
    spec = dataclasses.replace(
        get_model(None),
        name="qwen2.5-test",
        display_name="Qwen2.5 test",
        genie_config="reference/qwen2_5_7b_instruct.json",
    )
    names = [f"qwen2_5_7b_instruct_part_{n}_of_6.bin" for n in range(1, 7)]
    folder = export(tmp_path / "e", synthetic_bundle, names=names)
    plan = plan_bundle(folder, synthetic_bundle.qairt, "SM8750", model=spec)
    config = json.loads(plan.file("bundle/genie_config.json").data)
    assert config["dialog"]["context"]["n-vocab"] == 131072
    assert config["dialog"]["context"]["bos-token"] == 151644
    assert config["dialog"]["engine"]["model"]["binary"]["ctx-bins"] == names
    assert plan.model == "qwen2.5-test"
    # The same export is not Qwen2-7B-Instruct's.
    from qwenchat.errors import BundleError

    with pytest.raises(BundleError, match="has 6 parts; Qwen2-7B-Instruct's has 4"):
        plan_bundle(folder, synthetic_bundle.qairt, "SM8750")


def test_push_records_the_model_it_was_given(capsys, emulator, synthetic_bundle):
    code, out, err = cli(
        capsys, "push-assets", "--bundle", str(synthetic_bundle.bundle), "--qairt",
        str(synthetic_bundle.qairt), "--connect", emulator.address, "--transport", "direct",
        "--json", "--model", "qwen2",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["model"] == "qwen2-7b-instruct"
    manifest = json.loads(
        (emulator.config.fs_root / "data/local/tmp/qwenchat/manifest.json").read_text()
    )
    assert manifest["model"] == "qwen2-7b-instruct" and manifest["soc"] == "SM8750"
