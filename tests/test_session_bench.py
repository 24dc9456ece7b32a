"""`qwenchat bench --engine session`: a warm dialog, labelled as such in every output.

Oracles: hand-written labels, the emulated phone's own command log (one `dialog create`, a
`dialog reset` between trials), the store's SQLite file read with sqlite3, and the phone's
process table.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.emulator.commandlog import read_records

WARM = "session (warm dialog"  # how every output names the engine (hand-written)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def cli(capsys, *args: str) -> tuple[int, str]:
    code = run_app(app, list(args))
    out, _ = capsys.readouterr()
    return code, out


def shell_lines(emu) -> list[str]:
    return [r["what"] for r in read_records(emu.root) if r.get("kind") in ("shell", "stdin") and "what" in r]


SWEEP = ("-p", "128", "-r", "2", "--warmup", "1", "--gen-len", "8", "--cooldown", "0")


def test_session_bench_is_one_load_and_a_reset_between_trials(bundled_phone, capsys):
    emu, dev = bundled_phone()
    code, out = cli(
        capsys, "bench", "--connect", emu.address, "--transport", "direct",
        "--engine", "session", *SWEEP, "--json",
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["engine"] == "session"
    assert report["engine_label"].startswith(WARM)
    assert report["context"]["engine"] == "session"
    trials = report["trials"]
    assert len(trials) == 3 and all(t["ok"] for t in trials)
    lines = shell_lines(emu)
    assert sum("dialog create" in w for w in lines) == 1
    assert sum("dialog reset" in w for w in lines) == 2  # between the 3 trials
    # Genie's load shows on the trial that paid it (the warm-up) and on no other.
    inits = [t["result"]["genie"]["init_ms"] for t in trials]
    assert inits[0] is not None and inits[1:] == [None, None]
    # The run ended its genie-app.
    assert "genie-app -s" not in dev.shell("ps -A -o ARGS").text

    run_id = report["run_id"]
    _, table = cli(capsys, "bench", "--show", run_id)
    assert "engine: session (warm dialog" in table
    _, md = cli(capsys, "bench", "--show", run_id, "-o", "md")
    assert "- Engine: session (warm dialog" in md
    assert "· session (warm dialog) ·" in md.splitlines()[0]
    _, text = cli(capsys, "bench", "--show", run_id, "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and all(r["engine"].startswith(WARM) for r in rows)
    _, jsonl = cli(capsys, "bench", "--show", run_id, "-o", "jsonl")
    assert all(json.loads(line)["engine"] == "session" for line in jsonl.splitlines())
    _, listing = cli(capsys, "results", "list")
    assert "session (warm dialog)" in listing


def test_default_bench_is_a_fresh_process_per_trial_and_says_so(bundled_phone, capsys):
    emu, dev = bundled_phone()
    code, out = cli(
        capsys, "bench", "--connect", emu.address, "--transport", "direct", *SWEEP, "--json"
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["engine"] == "process"
    assert report["engine_label"].startswith("process (a fresh genie-t2t-run per trial")
    assert not any("genie-app -s" in w or "dialog query" in w for w in shell_lines(emu))
    # The store's own column says so too (read with sqlite3, not qwenchat).
    from qwenchat.paths import store_path

    db = sqlite3.connect(store_path())
    engines = dict(db.execute("SELECT id, engine FROM bench_runs"))
    db.close()
    assert engines == {report["run_id"]: "process"}


def test_session_bench_refuses_a_phone_without_genie_app(
    emulator_factory, adb_key, synthetic_bundle, tmp_path, capsys
):
    """A QAIRT without genie-app (older SDKs) pushed: a session bench is refused in one line
    (no silent fallback: the run would not measure what it says)."""
    import shutil

    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.layout import PhoneLayout

    qairt = tmp_path / "qairt"
    shutil.copytree(synthetic_bundle.qairt, qairt)
    (qairt / "bin" / "aarch64-android" / "genie-app").unlink()
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.02, jitter=False)
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        plan = plan_bundle(synthetic_bundle.bundle, qairt, "SM8750", tokenizer=synthetic_bundle.tokenizer)
        push_assets(dev, plan, PhoneLayout(), overlap=False)
    code = run_app(app, [
        "bench", "--connect", emu.address, "--transport", "direct", "--engine", "session",
        *SWEEP,
    ])
    _, err = capsys.readouterr()
    assert code == 1
    assert "no genie-app on the phone" in err
    assert "Traceback" not in err


def test_unknown_engine_is_a_usage_error(capsys):
    code = run_app(app, ["bench", "--engine", "warm", "--connect", "127.0.0.1:9"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "unknown --engine 'warm'" in err
