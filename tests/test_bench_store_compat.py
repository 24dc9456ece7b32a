"""A store written by the bench before its records were typed (commit 4738144: trials as
dicts, no model column; tests/data/bench/store-4738144.db, made by the script beside it)
still opens, migrates, lists, reports in every format and refuses a wrong resume.

The oracle is the old file itself, read with sqlite3 and json here: no qwenchat code."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

OLD_STORE = Path(__file__).parent / "data" / "bench" / "store-4738144.db"
DONE = "20261130-072910-debe99"
INTERRUPTED = "20261130-072920-5e6940"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def old_store(tmp_path, monkeypatch) -> Path:
    """The old file copied to where qwenchat looks for its store (opening migrates it)."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    path = home / "data" / "qwenchat.db"
    shutil.copyfile(OLD_STORE, path)
    monkeypatch.setenv("QWENCHAT_HOME", str(home))
    return path


def raw_rows(path: Path, run_id: str) -> list[dict]:
    """The trial rows as the old code wrote them."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute(
        "SELECT length, rep, ok, stop_reason, result_json FROM bench_trials WHERE run_id = ?"
        " ORDER BY id", (run_id,))]
    db.close()
    for row in rows:
        row["result"] = json.loads(row.pop("result_json"))
    return rows


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_fixture_is_the_old_schema():
    """What makes this test mean something: the file has no model column and m030/m031 only."""
    db = sqlite3.connect(OLD_STORE)
    columns = [r[1] for r in db.execute("PRAGMA table_info(bench_runs)")]
    applied = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    db.close()
    assert "model" not in columns and "note" not in columns
    assert [m for m in applied if m.startswith("m03")] == ["m030_bench_runs", "m031_bench_trials"]


def test_an_old_store_opens_migrates_and_reads_typed(old_store):
    from qwenchat.bench.records import RunStatus, StopReason
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.bench.thermal import ThermalReading
    from qwenchat.device.info import DeviceInfo
    from qwenchat.store import open_store

    with open_store() as store:
        storage = BenchStorage(store)
        done, stopped = storage.get_run(DONE), storage.get_run(INTERRUPTED)
        applied = {r[0] for r in store.db.execute("SELECT name FROM _migrations")}
    assert {"m032_bench_run_model", "m033_bench_trial_manifest",
            "m034_bench_run_note"} <= applied
    assert done.model == stopped.model == "qwen2-7b-instruct"  # the only model there was
    assert done.context.published_key == "qwen2-7b-instruct"
    assert done.status is RunStatus.DONE and stopped.status is RunStatus.INTERRUPTED
    assert isinstance(done.context.device, DeviceInfo) and done.context.device.soc == "SM8750"
    assert done.context.device.address == "127.0.0.1:34663" and done.simulated
    assert [p.tokens for p in done.plan.lengths] == [64, 300] and done.plan.seed == 5
    raw = raw_rows(old_store, DONE)
    assert len(done.trials) == len(raw) == 8
    for trial, row in zip(done.trials, raw, strict=True):
        assert (trial.length, trial.rep, trial.ok) == (row["length"], row["rep"], bool(row["ok"]))
        assert trial.stop_reason is StopReason(row["stop_reason"])
        assert trial.genie.ttft_ms == row["result"]["genie"]["ttft_ms"]
        assert trial.host.first_token_ms == row["result"]["host"]["first_token_ms"]
        assert isinstance(trial.thermal_before, ThermalReading)
        assert trial.manifest_hash is None  # not recorded per trial then


def test_an_old_run_reports_in_every_format(old_store, capsys):
    raw = [r for r in raw_rows(old_store, DONE) if r["rep"] >= 0 and r["ok"]]
    expected = {n: median([r["result"]["genie"]["ttft_ms"] for r in raw if r["length"] == n])
                for n in (64, 300)}
    decode = {n: median([r["result"]["genie"]["decode_tok_s"] for r in raw if r["length"] == n])
              for n in (64, 300)}

    code, out, err = cli(capsys, "results", "show", DONE, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == "qwen2-7b-instruct" and report["verdict_statistic"] == "median"
    for length in report["lengths"]:
        assert length["ttft_ms"]["median"] == pytest.approx(expected[length["length"]])
        assert length["ttft_vs_published"]["expected"] == pytest.approx(
            {64: 170.593, 300: 3 * 170.593}[length["length"]])

    code, out, err = cli(capsys, "results", "show", DONE, "-o", "csv")
    assert code == 0, err
    rows = {int(r["length"]): r for r in csv.DictReader(io.StringIO(out))}
    for n in (64, 300):
        assert float(rows[n]["genie_ttft_ms_median"]) == pytest.approx(expected[n])
        assert float(rows[n]["genie_decode_tok_s_median"]) == pytest.approx(decode[n])
        assert rows[n]["model"] == "qwen2-7b-instruct"

    code, out, err = cli(capsys, "results", "show", DONE, "-o", "md")
    assert code == 0, err
    for n in (64, 300):
        assert f"| {n} | {expected[n]:,.1f} |" in out

    code, out, err = cli(capsys, "results", "show", DONE, "--no-chart")
    assert code == 0, err
    assert f"bench run {DONE} (done) · model qwen2-7b-instruct" in out
    assert f"{expected[300]:,.1f}" in out

    code, out, err = cli(capsys, "results", "show", DONE, "-o", "jsonl")
    assert code == 0 and len(out.splitlines()) == 8 + 2

    code, out, err = cli(capsys, "results", "list", "--json")
    assert code == 0, err
    assert [(r["id"], r["model"], r["status"]) for r in json.loads(out)] == [
        (INTERRUPTED, "qwen2-7b-instruct", "interrupted"), (DONE, "qwen2-7b-instruct", "done"),
    ]
    code, out, err = cli(capsys, "results", "compare", DONE, INTERRUPTED, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["lengths"] == []  # the two runs share no length


def test_an_old_interrupted_run_checks_the_phone_on_resume(
    old_store, capsys, emulator_factory, adb_key, synthetic_bundle
):
    """The old run was made on 127.0.0.1:34663; a phone elsewhere with the same serial is not
    it, and resuming says so without touching the run."""
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.layout import PhoneLayout

    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.01,
                           serial="emulator-qwenchat-0001")
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        push_assets(dev, plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750",
                                     tokenizer=synthetic_bundle.tokenizer), PhoneLayout())
    assert emu.serial == "emulator-qwenchat-0001"  # the old run's serial (given above)
    code, out, err = cli(capsys, "bench", "--connect", emu.address, "--transport", "direct",
                         "--resume")  # the latest unfinished: the old interrupted run
    assert code == 2 and out == ""
    assert (f"bench run {INTERRUPTED} ran on phone at '127.0.0.1:34663', this is "
            f"'{emu.address}'") in err
    assert len(raw_rows(old_store, INTERRUPTED)) == 2
