"""What stops a bench run early, through the emulated phone (real ADB sockets, the simulated
genie-t2t-run, real SQLite store): a signal to a real `qwenchat bench` process, the phone
vanishing mid-trial, a Genie that never answers, a bundle pushed while the run goes on, and
`--resume` on the wrong phone or bundle. In every case the finished trials stay in the store,
the run says why it ended, and nothing is left running on the phone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from fixtures_device import push_bundle

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.layout import PhoneLayout

FAST = ["--gen-len", "4", "--warmup", "0", "--cooldown", "0", "--seed", "7"]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one error line stays one line


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def phone(bundled_phone):
    """Factory: an emulated phone with the bundle pushed and a direct Device to it.
    ``profile``: the simulated Genie's device profile (a dict)."""

    def make(**overrides):
        overrides.setdefault("time_scale", 0.01)
        return bundled_phone(**overrides)

    return make


def bench(capsys, emu, *args: str) -> tuple[int, str, str]:
    return cli(capsys, "bench", "--connect", emu.address, "--transport", "direct", *args)


def genie_pids(dev) -> list[str]:
    return dev.shell("pidof genie-t2t-run", timeout=10).text.split()


def stored_run(run_id: str):
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    with open_store() as store:
        return BenchStorage(store).get_run(run_id)


# ----- signals, through a real process
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_trial_stops_genie_saves_the_run_and_exits_128_plus_signal(
    phone, signum, code
):
    """`qwenchat bench` in its own process gets the signal while the phone's Genie is loading
    (a 3 s load, time scale 1): the exit code says which signal, the run is marked
    interrupted with its finished trial, and `pidof` on the phone finds no genie-t2t-run."""
    from qwenchat.bench.records import RunStatus

    emu, dev = phone(time_scale=1.0, profile={
        "init_ms": 3000, "prefill_chunk_ms": 20, "decode_tok_s": 200, "free_ms": 5,
        "chunk_tokens": 128, "jitter_pct": 0,
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenchat", "bench", "--connect", emu.address, "--transport",
         "direct", "-p", "64", "-r", "4", *FAST, "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    lines: list[str] = []
    outs: list[str] = []
    # One reader per pipe, and nothing else reads them (communicate() would race these).
    readers = [threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True),
               threading.Thread(target=lambda: outs.append(proc.stdout.read()), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 120
        # The first trial is stored ([1/4] printed), then the second one's Genie runs.
        while not any(line.startswith("[1/4]") for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        while not genie_pids(dev):
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    for reader in readers:
        reader.join(timeout=10)
    err, out = "".join(lines), "".join(outs)
    assert proc.returncode == code, err
    assert genie_pids(dev) == []  # the runner stopped it before the process exited
    report = json.loads(out)  # the partial report still reaches stdout
    assert report["status"] == "interrupted" and len(report["trials"]) == 1
    assert f"stopped: interrupted ({signal.Signals(signum).name})" in err
    assert f"--resume {report['run_id']}" in err and "Traceback" not in err
    run = stored_run(report["run_id"])
    assert run.status is RunStatus.INTERRUPTED and run.note == (
        f"interrupted ({signal.Signals(signum).name})"
    )
    assert [(t.length, t.rep, t.ok) for t in run.trials] == [(64, 0, True)]


# ----- the phone vanishing
def test_the_phone_lost_mid_trial_exits_75_and_keeps_what_was_measured(
    phone, capsys, monkeypatch
):
    from qwenchat.bench import runner as runner_mod
    from qwenchat.bench.records import RunStatus, StopReason

    emu, _ = phone(time_scale=1.0, profile={
        "init_ms": 1500, "prefill_chunk_ms": 20, "decode_tok_s": 200, "free_ms": 5,
        "chunk_tokens": 128, "jitter_pct": 0,
    })
    original = runner_mod.BenchRun._one
    calls = {"n": 0}

    def lose_the_phone_in_the_third(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:  # the emulated phone goes away while Genie loads
            threading.Timer(0.7, emu.stop).start()
        return original(self, *args)

    monkeypatch.setattr(runner_mod.BenchRun, "_one", lose_the_phone_in_the_third)
    code, out, err = bench(capsys, emu, "-p", "64", "-r", "5", *FAST, "-o", "json")
    assert code == 75, err
    assert "stopped: the phone was lost" in err and "Traceback" not in err
    report = json.loads(out)
    assert report["status"] == "interrupted"
    run = stored_run(report["run_id"])
    assert run.status is RunStatus.INTERRUPTED and run.note.startswith("the phone was lost")
    oks = [t for t in run.trials if t.ok]
    assert [(t.length, t.rep) for t in oks] == [(64, 0), (64, 1)]
    assert all(t.genie.ttft_ms > 0 for t in oks)
    # The trial the link took away is kept and says so; --resume would run it again.
    assert [t.stop_reason for t in run.trials[2:]] == [StopReason.DEVICE_LOST]


# ----- Genie that never answers
def test_a_hung_genie_times_out_with_its_own_stop_reason(phone, capsys):
    from qwenchat.emulator.config import Faults

    emu, dev = phone(faults=Faults(hang_before_first_token=True))
    started = time.monotonic()
    code, out, err = bench(capsys, emu, "-p", "64", "-r", "2", *FAST, "--load-timeout", "1",
                           "-o", "json")
    assert code == 1, err  # no successful trial at 64 tokens (bench/exit_status.py)
    assert "no successful trial at prompt length 64 (2 tried)" in err
    # Two trials, each bounded by 1 s of load + 64 tokens at the 50 tok/s floor: 2.28 s.
    assert time.monotonic() - started < 60
    report = json.loads(out)
    assert [t["stop_reason"] for t in report["trials"]] == ["timed_out", "timed_out"]
    assert all("no reply within 2 s" in t["error"] for t in report["trials"])
    assert report["plan"]["load_timeout_s"] == 1.0
    assert report["lengths"][0]["stop_reasons"] == {"timed_out": 2}
    assert genie_pids(dev) == []  # each hung Genie was stopped
    code, table, _ = cli(capsys, "results", "show", report["run_id"], "--no-chart")
    assert "64 tokens, rep 1 (timed_out): Genie gave no reply within 2 s" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--load-timeout", "0"], "--load-timeout must be a number of seconds above 0"),
     (["--stall-timeout", "-3"], "--stall-timeout must be a number of seconds above 0")],
)
def test_bad_timeouts_are_one_line(capsys, args, message):
    code, out, err = cli(capsys, "bench", "-p", "64", *args)
    assert code == 2 and message in err and out == "" and "Traceback" not in err


# ----- the bundle changing under a run
def test_a_bundle_pushed_during_a_trial_ends_the_run(phone, capsys, monkeypatch, tmp_path):
    """A second push-assets (another bundle) runs on its own connection while trial 2 runs:
    trial 2 is not counted, the run stops with one line naming both manifests, and each
    stored trial carries the manifest hash it ran with."""
    import hashlib

    from qwenchat.bench import runner as runner_mod
    from qwenchat.bench.records import RunStatus, StopReason
    from qwenchat.emulator.bundle import make_bundle

    emu, dev = phone()
    layout = PhoneLayout()
    first_hash = hashlib.sha256(dev.pull_bytes(layout.manifest_path)).hexdigest()
    other = make_bundle(tmp_path / "other", bin_size_mb=0.5, arch="v79", parts=4)
    original = runner_mod.BenchRun._one
    calls = {"n": 0}

    def push_during_the_second(self, *args):
        calls["n"] += 1
        if calls["n"] != 2:
            return original(self, *args)
        pusher = threading.Thread(target=push_bundle, args=(dev, other))
        pusher.start()
        try:
            return original(self, *args)
        finally:
            pusher.join()

    monkeypatch.setattr(runner_mod.BenchRun, "_one", push_during_the_second)
    code, out, err = bench(capsys, emu, "-p", "64", "-r", "4", *FAST, "-o", "json")
    second_hash = hashlib.sha256(dev.pull_bytes(layout.manifest_path)).hexdigest()
    assert second_hash != first_hash
    assert code == 1, err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert line == [
        f"error: bench run {json.loads(out)['run_id']} stopped: the phone's bundle changed "
        f"during the run (manifest {first_hash[:12]} → {second_hash[:12]}): figures of two "
        "bundles would not compare"
    ]
    hint = [x for x in err.splitlines() if x.startswith("hint:")]
    assert hint == ["hint: Its trials are kept (`qwenchat results show "
                    f"{json.loads(out)['run_id']}`); start a new run."]  # no --resume
    run = stored_run(json.loads(out)["run_id"])
    assert run.status is RunStatus.STOPPED
    assert [t.manifest_hash for t in run.trials] == [first_hash, first_hash]
    assert run.trials[0].ok and not run.trials[1].ok
    assert run.trials[1].stop_reason is StopReason.FAILED
    assert "bundle changed while this trial ran" in run.trials[1].error
    assert json.loads(out)["lengths"][0]["trials_ok"] == 1  # the mixed trial is no sample


# ----- --resume
def _interrupted_run(phone, capsys, monkeypatch, **overrides):
    """A run of 4 trials stopped by Ctrl-C in its third; returns (emu, dev, run id)."""
    from qwenchat.bench import runner as runner_mod

    emu, dev = phone(**overrides)
    original = runner_mod.BenchRun._one
    calls = {"n": 0}

    def interrupt_third(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(runner_mod.BenchRun, "_one", interrupt_third)
    code, out, err = bench(capsys, emu, "-p", "64,128", "-r", "2", *FAST, "-o", "json")
    assert code == 130, err
    monkeypatch.setattr(runner_mod.BenchRun, "_one", original)
    return emu, dev, json.loads(out)["run_id"]


def test_resume_refuses_another_phone_with_the_same_serial(phone, capsys, monkeypatch):
    emu, _, run_id = _interrupted_run(phone, capsys, monkeypatch)
    other, _ = phone(serial=emu.serial)  # a second emulated phone: same serial, another address
    assert other.serial == emu.serial and other.address != emu.address
    code, out, err = bench(capsys, other, "--resume", run_id)
    assert code == 2 and out == ""
    assert (
        f"error: bench run {run_id} ran on phone at '{emu.address}', this is '{other.address}'"
        in err
    )
    assert stored_run(run_id).trials and len(stored_run(run_id).trials) == 2  # untouched


def test_resume_refuses_a_changed_bundle(phone, capsys, monkeypatch, tmp_path):
    from qwenchat.emulator.bundle import make_bundle

    emu, dev, run_id = _interrupted_run(phone, capsys, monkeypatch)
    push_bundle(dev, make_bundle(tmp_path / "other", bin_size_mb=0.5, arch="v79", parts=4))
    code, _, err = bench(capsys, emu, "--resume", run_id[:17])  # a unique prefix
    assert code == 2
    assert f"the phone's bundle changed since bench run {run_id} started (manifest" in err


def test_resume_by_last_and_by_prefix_finishes_the_run(phone, capsys, monkeypatch):
    emu, _, run_id = _interrupted_run(phone, capsys, monkeypatch)
    code, out, err = bench(capsys, emu, "--resume", "last", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["run_id"] == run_id and report["status"] == "done"
    assert [(t["length"], t["rep"]) for t in report["trials"]] == [
        (64, 0), (64, 1), (128, 0), (128, 1)
    ]
    code, _, err = bench(capsys, emu, "--resume", run_id[:17])
    assert code == 2 and "is already complete" in err


def test_check_same_phone_names_what_differs():
    """Each identity field, changed alone, is refused with its own words."""
    from dataclasses import replace

    from qwenchat.bench.records import RunContext, RunPlan, RunRecord, RunStatus
    from qwenchat.bench.runner import check_same_phone
    from qwenchat.device.info import DeviceInfo
    from qwenchat.errors import UsageError

    device = DeviceInfo("SER1", "10.0.0.2:5555", "Phone", "Maker", "SM8750", None, None,
                        "15", "35", None, None, "/w", "direct", False, "")
    ctx = RunContext(device, "qwen2-7b-instruct", "qwen2-7b-instruct", "c" * 64, "m" * 64,
                     4096, None, -1, "/w")
    run = RunRecord("20261130-000000-aaaaaa", 0.0, RunStatus.INTERRUPTED,
                    RunPlan([], 4, 1, 0, 1), ctx)
    check_same_phone(run, ctx)  # the same phone passes
    cases = [
        (replace(ctx, model="llama-v2-7b-chat"), "ran on model 'qwen2-7b-instruct', this is "
         "'llama-v2-7b-chat'"),
        (replace(ctx, device=replace(device, serial="SER2")), "ran on phone 'SER1', this is "
         "'SER2'"),
        (replace(ctx, device=replace(device, address="10.0.0.3:5555")),
         "ran on phone at '10.0.0.2:5555', this is '10.0.0.3:5555'"),
        (replace(ctx, device=replace(device, soc="SM8650")), "ran on SoC 'SM8750', this is "
         "'SM8650'"),
        (replace(ctx, config_hash="d" * 64), "genie_config.json changed"),
        (replace(ctx, bundle_manifest_hash="n" * 64), "bundle changed since"),
    ]
    for now, message in cases:
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            check_same_phone(run, now)


def test_a_bundle_pushed_between_trials_ends_the_run_before_the_next(
    phone, capsys, monkeypatch, tmp_path
):
    """The push lands while the bench reads the phone's state between trials 1 and 2: the
    manifest check before trial 2 sees it, and trial 2 never runs."""
    from qwenchat.bench import runner as runner_mod
    from qwenchat.bench.records import RunStatus
    from qwenchat.emulator.bundle import make_bundle

    emu, dev = phone()
    other = make_bundle(tmp_path / "other", bin_size_mb=0.5, arch="v79", parts=4)
    original = runner_mod.read_power
    calls = {"n": 0}

    def push_before_the_second(device):
        calls["n"] += 1
        if calls["n"] == 2:
            push_bundle(dev, other)
        return original(device)

    monkeypatch.setattr(runner_mod, "read_power", push_before_the_second)
    code, out, err = bench(capsys, emu, "-p", "64", "-r", "3", *FAST, "-o", "json")
    assert code == 1, err
    assert "the phone's bundle changed during the run (manifest" in err
    run = stored_run(json.loads(out)["run_id"])
    assert run.status is RunStatus.STOPPED and len(run.trials) == 1 and run.trials[0].ok
