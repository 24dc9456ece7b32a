"""A bench run's exit status tells scripts how it went (issue #27).

Failure modes, each tested:
- every trial failed (Genie never loads) and the run exits 0 saying "(done)";
- one prompt length has no successful trial while another has: still exit 0;
- "ran with some failures" cannot be told from "ran clean";
- a clean run stops exiting 0;
- warm-up failures count (they must not: they are not measured).
"""

from __future__ import annotations

import pytest

from qwenchat.bench.exit_status import run_verdict
from qwenchat.bench.records import RunRecord, RunStatus, StopReason, TrialRecord, TrialResult
from qwenchat.cli import app
from qwenchat.cli.errors import run_app


def _trial(length: int, rep: int, ok: bool) -> TrialRecord:
    return TrialRecord(length=length, requested=length, rep=rep, result=TrialResult(
        length=length, seed=rep, ok=ok, stop_reason=StopReason.EOS if ok else StopReason.FAILED,
        error=None if ok else "Genie failed to load the model"))


def _run(*trials: TrialRecord) -> RunRecord:
    return RunRecord("r1", 0.0, RunStatus.DONE, plan=None, context=None, trials=list(trials))


@pytest.mark.parametrize(
    "trials, code, message",
    [
        ([(128, -1, False), (128, 0, True), (512, 0, True)], 0, None),
        ([(128, 0, True), (128, 1, False), (512, 0, True)], 3,
         "run r1: 1 of 3 trials failed (128: 1); the figures use the successful ones "
         "(first error: Genie failed to load the model)"),
        ([(128, 0, True), (512, 0, False), (512, 1, False)], 1,
         "run r1: no successful trial at prompt length 512 (2 tried) (first error: Genie "
         "failed to load the model)"),
        ([(128, 0, False), (512, 0, False)], 1,
         "run r1: no successful trial at prompt length 128 (1 tried), 512 (1 tried) (first "
         "error: Genie failed to load the model)"),
    ],
)
def test_the_verdict_of_a_run(trials, code, message):
    verdict = run_verdict(_run(*(_trial(*t) for t in trials)))
    assert (verdict.code, verdict.message) == (code, message)


def _bench(capsys, emu, *args):
    code = run_app(app, ["bench", "--connect", emu.address, "--transport", "direct",
                         "--warmup", "0", "--gen-len", "4", "--cooldown", "0", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bench_where_genie_never_loads_exits_1_naming_the_length(bundled_phone, capsys,
                                                                    phone_fault, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    emu, _ = bundled_phone(time_scale=0.01)
    code, out, err = _bench(capsys, emu, "-p", "128", "-r", "2")
    assert code == 0, err  # a healthy phone: clean
    phone_fault(emu, "genie-fail-load")
    code, out, err = _bench(capsys, emu, "-p", "128", "-r", "2")
    assert code == 1
    assert "error: run " in err and ": no successful trial at prompt length 128 (2 tried)" in err
