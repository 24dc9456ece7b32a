"""doctor's model-aware checks and its report, on the emulated phone; expected texts by hand."""

from __future__ import annotations

import json

from qwenchat.cli import app
from qwenchat.cli.errors import run_app


def _doctor(capsys, emu, *args: str) -> tuple[int, dict]:
    code = run_app(app, ["doctor", "--connect", emu.address, "--transport", "direct", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def _checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_a_ready_phone_passes_and_names_its_model(bundled_phone, capsys):
    emu, _ = bundled_phone()
    code, report = _doctor(capsys, emu)
    checks = _checks(report)
    assert code == 0 and report["model"] == "qwen2-7b-instruct"
    assert checks["model"]["detail"] == "Qwen2-7B-Instruct"
    published = checks["Qwen2-7B-Instruct binaries for this chip"]
    assert published["ok"] and not published["warn"]
    assert published["detail"].startswith("published for SM8750 (Snapdragon 8 Elite)")
    assert checks["memory"]["detail"] == "16.0 GB (MemTotal)" and not checks["memory"]["warn"]
    assert checks["genie-t2t-run runs"]["ok"]


def test_a_phone_with_another_chip_and_little_memory_gets_warnings(bundled_phone, capsys):
    emu, _ = bundled_phone(soc="SM8650", ram_mb=12288)
    code, report = _doctor(capsys, emu)
    checks = _checks(report)
    published = checks["Qwen2-7B-Instruct binaries for this chip"]
    assert published["ok"] and published["warn"]
    assert published["detail"].startswith("SM8650 has none published (only SM8750 (Snapdragon 8 Elite)")
    assert "--hub-job" in published["advice"]
    memory = checks["memory"]
    assert memory["ok"] and memory["warn"]
    assert memory["detail"].startswith("12.0 GB (MemTotal): below the 16 GB")


def test_report_file_holds_the_run_and_no_serial(bundled_phone, capsys, tmp_path):
    emu, _ = bundled_phone()
    path = tmp_path / "report.json"
    code, _ = _doctor(capsys, emu, "--report", str(path))
    assert code == 0
    text = path.read_text()
    doc = json.loads(text)
    assert doc["format"] == "qwenchat-doctor-report/1" and doc["simulated"] is True
    assert emu.serial not in text and emu.address not in text  # hashed, everywhere
    assert doc["device"]["props"]["ro.soc.model"] == "SM8750"
    assert doc["bundle"]["genie_config"]["dialog"]["context"]["size"] == 4096
    probe = doc["probe"]
    assert probe["prompt"] == "Hello" and probe["exit_code"] == 0 and probe["outcome"] == "finished"
    assert "[BEGIN]: " in probe["stdout"] and "[END]" in probe["stdout"]
    assert probe["profile"]["header"]["artifact_type"] == "GENIE_PROFILE"
    # replay reads it back through the live parser: the reply is the one in its stdout.
    capsys.readouterr()
    assert run_app(app, ["replay", str(path), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    begin = probe["stdout"].index("[BEGIN]: ") + len("[BEGIN]: ")
    assert replayed["reply"] == probe["stdout"][begin : probe["stdout"].index("[END]")]
    assert replayed["outcome"] == "finished"
    assert replayed["figures"]["source"] == "genie --profile"
    assert replayed["figures"]["prompt_tokens"] == probe["profile"]["components"][0]["events"][1][
        "num-prompt-tokens"]["value"]


def test_report_to_a_missing_folder_is_one_line(bundled_phone, capsys, tmp_path):
    emu, _ = bundled_phone()
    code = run_app(app, ["doctor", "--connect", emu.address, "--report", str(tmp_path / "no" / "r.json")])
    err = capsys.readouterr().err
    assert code != 0 and "does not exist" in err and "Traceback" not in err


def test_qairt_versions_are_compared_by_their_numbers():
    from qwenchat.checks.doctor import _qairt_version_check
    from qwenchat.manifest import BundleManifest

    same = _qairt_version_check(BundleManifest(qairt_version="2.31.0.250130", binaries_qairt_version="2.31.0"))
    assert same.ok and not same.warn
    other = _qairt_version_check(BundleManifest(qairt_version="2.31.0", binaries_qairt_version="2.28.2"))
    assert other.ok and other.warn
    assert other.detail == (
        "the phone runs QAIRT 2.31.0, the context binaries were compiled with QAIRT 2.28.2"
    )
    odd = _qairt_version_check(BundleManifest(qairt_version="2.31.0-rc1", binaries_qairt_version="2.31.0"))
    assert odd.warn  # not the same text, not comparable by numbers: said, not guessed
