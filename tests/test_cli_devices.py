"""`qwenchat devices | connect | disconnect | doctor | clean` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.device.endpoints import load_endpoints, parse_endpoint, remember


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_no_phone_is_one_red_line_without_traceback(tmp_path):
    env = {**os.environ, "QWENCHAT_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "qwenchat", "doctor", "--transport", "direct", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    report = json.loads(result.stdout)
    assert report["checks"][0]["name"] == "reachable" and not report["checks"][0]["ok"]
    result = subprocess.run(
        [sys.executable, "-m", "qwenchat", "clean", "--transport", "direct"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: no phone found")
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_connect_devices_json_disconnect(capsys, emulator):
    code, out, _ = cli(capsys, "connect", emulator.address)
    assert code == 0 and emulator.address in out and "SIMULATED" in out
    assert load_endpoints() == [parse_endpoint(emulator.address)]

    code, out, _ = cli(capsys, "devices", "--json", "--transport", "direct")
    assert code == 0
    [row] = json.loads(out)
    assert row["address"] == emulator.address
    assert row["serial"] == emulator.serial
    assert "SIMULATED" in row["model"] and row["simulated"] is True
    assert row["soc"] == "SM8750" and row["hexagon_arch"] == "v79"
    assert row["android_version"] == emulator.config.android_version
    assert row["ram_mb"] > 0 and row["free_mb"] > 0
    assert row["transport"] == "direct"

    code, out, _ = cli(capsys, "devices", "--transport", "direct")
    assert code == 0 and "SIMULATED" in out and "v79" in out

    code, out, _ = cli(capsys, "disconnect", emulator.address)
    assert code == 0 and load_endpoints() == []
    code, _, err = cli(capsys, "disconnect", emulator.address)
    assert code != 0 and "was not connected" in err


def test_several_phones_through_the_cli(capsys, emulator_factory, adb_key):
    one = emulator_factory(authorized_keys=[adb_key], serial="cli-one")
    two = emulator_factory(authorized_keys=[adb_key], serial="cli-two")
    remember(parse_endpoint(one.address))
    remember(parse_endpoint(two.address))
    code, _, err = cli(capsys, "clean", "--transport", "direct")
    assert code != 0
    assert "2 phones found" in err and one.address in err and two.address in err
    assert "Traceback" not in err
    code, out, _ = cli(capsys, "devices", "--json", "-s", "cli-two", "--transport", "direct")
    assert [row["serial"] for row in json.loads(out)] == ["cli-two"]


def test_unauthorized_phone_through_the_cli(capsys, emulator_factory, adb_key):
    phone = emulator_factory()
    code, _, err = cli(
        capsys,
        "clean",
        "--connect",
        phone.address,
        "--transport",
        "direct",
        "--auth-timeout",
        "0.5",
    )
    assert code != 0
    assert "Allow USB debugging" in err  # we said we were waiting
    assert "did not authorize" in err and "Traceback" not in err


def test_doctor_on_a_phone_without_bundle(capsys, emulator):
    code, out, _ = cli(
        capsys, "doctor", "--connect", emulator.address, "--json", "--transport", "direct"
    )
    assert code == 1
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["simulated"] is True
    for passing in ("reachable", "authorized", "SoC supported", "work dir writable", "free space"):
        assert checks[passing]["ok"], checks[passing]
    assert not checks["bundle present"]["ok"]
    assert "qwenchat push-assets" in checks["bundle present"]["advice"]
    assert (
        not checks["QAIRT runtime"]["ok"]
        and "libQnnHtpV79Skel.so" in checks["QAIRT runtime"]["detail"]
    )
    assert not checks["genie-t2t-run runs"]["ok"]

    code, out, _ = cli(capsys, "doctor", "--connect", emulator.address, "--transport", "direct")
    assert code == 1 and "✗" in out and "✓" in out and "bundle present" in out


def test_clean_removes_states_and_tmp_and_keeps_the_bundle(capsys, emulator, device):
    work = "/data/local/tmp/qwenchat"
    for path in ("states/s1.bin", "tmp/p.txt", "bundle/genie_config.json"):
        device.push_bytes(b"x" * 100, f"{work}/{path}")
    code, out, _ = cli(capsys, "clean", "--connect", emulator.address, "--transport", "direct")
    assert code == 0, out
    assert device.stat(f"{work}/states") is None and device.stat(f"{work}/tmp") is None
    assert device.stat(f"{work}/bundle/genie_config.json") is not None
    code, _, err = cli(capsys, "clean", "--bundle", "--connect", emulator.address)
    assert code != 0 and "--yes" in err  # no tty, no --yes: refuse
    code, _, _ = cli(
        capsys, "clean", "--bundle", "--yes", "--connect", emulator.address, "--transport", "direct"
    )
    assert code == 0 and device.stat(f"{work}/bundle") is None
    code, _, err = cli(
        capsys,
        "clean",
        "--all",
        "--yes",
        "--device-dir",
        "/data/local/tmp",
        "--connect",
        emulator.address,
    )
    assert code != 0 and "refusing" in err


@pytest.mark.google_adb
def test_devices_through_the_adb_server(capsys, server_device, emulator):
    code, out, _ = cli(capsys, "devices", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert row["transport"] == "server" and row["simulated"] and row["hexagon_arch"] == "v79"


def test_doctor_passes_on_a_prepared_phone_and_spots_a_damaged_file(
    capsys, emulator, device, synthetic_bundle
):
    from qwenchat.assets.push import prepare_phone

    prepare_phone(
        device,
        synthetic_bundle.bundle,
        synthetic_bundle.qairt,
        tokenizer=synthetic_bundle.tokenizer,
    )
    code, out, _ = cli(capsys, "doctor", "--connect", emulator.address, "--json", "--deep")
    report = json.loads(out)
    assert code == 0, report
    checks = {c["name"]: c for c in report["checks"]}
    assert "SHA-256 verified" in checks["bundle intact"]["detail"]
    assert checks["genie-t2t-run runs"]["detail"].startswith("libGenie ")
    # No genie-t2t-run left running on the phone after the check.
    assert "genie-t2t-run" not in device.shell("ps -A").text

    # Same size, different bytes: only --deep can tell.
    work = "/data/local/tmp/qwenchat"
    manifest = json.loads(device.pull_bytes(f"{work}/manifest.json"))
    name = next(n for n in manifest["files"] if n.endswith(".bin"))
    size = manifest["files"][name]["size"]
    device.push_bytes(b"\0" * size, f"{work}/{name}")
    code, out, _ = cli(capsys, "doctor", "--connect", emulator.address, "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["bundle intact"]["ok"]  # sizes match
    assert code == 1 and not checks["genie-t2t-run runs"]["ok"]  # Genie refuses the file
    code, out, _ = cli(capsys, "doctor", "--connect", emulator.address, "--json", "--deep")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1 and not checks["bundle intact"]["ok"]
    assert name in checks["bundle intact"]["detail"]
