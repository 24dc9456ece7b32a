"""What a person at a terminal sees of bench and results: a live progress bar on a terminal
(plain lines in a pipe), run ids never cut in `results list` at 80 or 120 columns, `last`
and unique prefixes wherever an id is taken, and the SIMULATED warning of a comparison once.

Terminal behaviour is checked through a real pseudo-terminal (pty) around a real qwenchat
process; stores are real SQLite files."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def in_pty(args: list[str], *, columns: int = 120, timeout: float = 120) -> tuple[int, str]:
    """Run ``python -m qwenchat ARGS`` with stdout and stderr on a pseudo-terminal; returns
    the exit code and everything the terminal showed (escape sequences removed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "qwenchat", *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
            assert time.monotonic() < deadline, b"".join(chunks).decode(errors="replace")
        proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace"))


def make_runs(n: int, *, simulated: bool = True, model: str = "qwen2-7b-instruct") -> list[str]:
    """``n`` finished runs stored straight into the store (no phone needed to list them)."""
    from qwenchat.bench.records import (
        GenieFigures,
        HostFigures,
        RunContext,
        RunPlan,
        RunStatus,
        StopReason,
        TrialRecord,
        TrialResult,
    )
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.bench.sweep import PlannedLength
    from qwenchat.device.info import DeviceInfo
    from qwenchat.store import open_store

    device = DeviceInfo(
        "emulator-qwenchat-0001", "127.0.0.1:5555",
        "qwenchat emulator (SIMULATED) with a long product name", "qwenchat", "SM8750",
        "Snapdragon 8 Elite", "v79", "15", "35", 16384, 65536, "/data/local/tmp/qwenchat",
        "direct", simulated, "",
    )
    lengths = [128, 256, 512, 1024, 2048, 4096]
    ids = []
    with open_store() as store:
        storage = BenchStorage(store)
        for i in range(n):
            ctx = RunContext(device, model, model, "c" * 64, "m" * 64, 4096, None, -1,
                             "/data/local/tmp/qwenchat", simulated=simulated)
            plan = RunPlan([PlannedLength(x, min(x, 3968)) for x in lengths], 128, 3, 0, i)
            run_id = storage.create_run(plan, ctx, None)
            for rep in range(3):
                for length in plan.lengths:
                    ttft = 170.0 * (length.tokens // 128 or 1) * (1 + 0.01 * rep + 0.1 * i)
                    storage.add_trial(run_id, TrialRecord(
                        length.tokens, length.requested, rep,
                        TrialResult(length.tokens, rep, True, StopReason.MAX_TOKENS,
                                    genie=GenieFigures(900, ttft, 750, 13.0 + rep, length.tokens,
                                                       128, 9800, 11000, 5),
                                    host=HostFigures(ttft + 950, 12000, 40)),
                    ))
            storage.set_status(run_id, RunStatus.DONE)
            ids.append(run_id)
            time.sleep(0.01)  # distinct created_at
    return ids


@pytest.mark.parametrize("columns", [80, 120])
def test_results_list_never_cuts_a_run_id(capsys, monkeypatch, columns):
    ids = make_runs(3)
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = cli(capsys, "results", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    for run_id in ids:
        # whole, on one line: what --resume, show and compare take can be copied as is
        assert sum(1 for line in lines if run_id in line) == 1, out
    assert "…" not in out  # other columns wrap instead of being cut


def test_last_and_prefixes_work_wherever_an_id_is_taken(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    first, second = make_runs(2)
    unique = next(n for n in range(1, len(second) + 1) if not first.startswith(second[:n]))
    prefix = second[:unique]
    for args in (["results", "show", prefix, "-o", "json"],
                 ["results", "export", prefix],
                 ["bench", "--show", prefix, "-o", "json"],
                 ["results", "show", "last", "-o", "json"],
                 ["bench", "--show", "last", "-o", "json"]):
        code, out, err = cli(capsys, *args)
        assert code == 0, (args, err)
        assert json.loads(out)["run_id"] == second, args
    code, out, err = cli(capsys, "results", "compare", first[:unique], "last", "-o", "json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["a"]["id"], result["b"]["id"]) == (first, second)
    shared = os.path.commonprefix([first, second])
    code, out, err = cli(capsys, "results", "show", shared)
    assert code == 2 and f"{shared!r} matches 2 bench runs" in err
    # (--resume by prefix and by last: tests/test_bench_faults.py)


def test_the_simulated_warning_prints_once_on_a_terminal():
    a, b = make_runs(2)
    code, shown = in_pty(["results", "compare", a, b])
    assert code == 0, shown
    assert shown.count("both runs are SIMULATED") == 1, shown


def test_the_simulated_warning_in_a_pipe_is_in_the_table_and_on_stderr_once_each():
    a, b = make_runs(2)
    proc = subprocess.run([sys.executable, "-m", "qwenchat", "results", "compare", a, b],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("both runs are SIMULATED") == 1
    assert proc.stderr.count("both runs are SIMULATED") == 1


@pytest.fixture
def pushed_phone(emulator_factory, adb_key, synthetic_bundle):
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.layout import PhoneLayout

    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.01, jitter=False)
    with DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5) as dev:
        push_assets(dev, plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750",
                                     tokenizer=synthetic_bundle.tokenizer), PhoneLayout())
    return emu


def test_a_terminal_gets_a_live_progress_bar(pushed_phone):
    code, shown = in_pty(["bench", "--connect", pushed_phone.address, "--transport", "direct",
                          "-p", "64,128", "-r", "2", "--warmup", "0", "--gen-len", "4",
                          "--cooldown", "0", "--seed", "1", "-o", "json"], columns=160)
    assert code == 0, shown
    assert "4/4" in shown and "━" in shown  # trials done/total and the bar itself
    assert re.search(r"128 tok rep 2 .*4/4 · ETA \d:\d\d:\d\d · last TTFT [\d.,]+ ms, "
                     r"[\d.]+ tok/s", shown), shown
    assert "[1/4]" not in shown  # no plain per-trial lines on a terminal


def test_a_pipe_gets_one_plain_line_per_trial(pushed_phone):
    proc = subprocess.run(
        [sys.executable, "-m", "qwenchat", "bench", "--connect", pushed_phone.address,
         "--transport", "direct", "-p", "64", "-r", "2", "--warmup", "0", "--gen-len", "4",
         "--cooldown", "0", "--seed", "1", "-o", "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == ["[1/2] 64 tok rep 1", "[2/2] 64 tok rep 2"]
    assert all("TTFT" in line and "tok/s (genie)" in line for line in lines)
    assert "\x1b[" not in proc.stderr  # no escape codes in a log
    assert json.loads(proc.stdout)["run_id"]
