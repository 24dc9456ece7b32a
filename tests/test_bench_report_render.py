"""The bench report's outputs (table, JSON, JSON lines) rendered from a run built here with
known trials (tests/test_bench_report_build.py): every figure the table prints is compared
with the statistic recomputed in this file from the raw samples and formatted by hand.

What it catches: a format that drops or mislabels a figure, the engine line printed for the
default engine (or not for the warm session), a run's early-end note or its failures left
out, the cool-down total wrong, JSON lines that are not one object per line, Rich's number
highlighter recolouring the figures on a colour terminal.
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from test_bench_report_build import (
    DECODE_64,
    HOST_FIRST_64,
    TTFT_64,
    TTFT_4100,
    _run,
    o_median,
    o_summary,
)

from qwenchat.bench.records import RunStatus
from qwenchat.bench.report import build_report, write_json, write_jsonl, write_table
from qwenchat.bench.thermal import CooldownResult


def table(run) -> str:
    out = io.StringIO()
    write_table(build_report(run), out, width=250)
    return out.getvalue()


def row_lines(text: str, first_cell: str) -> list[str]:
    """The lines of the table row whose first cell is first_cell (until the next rule)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("│") and cells(line)[0] == first_cell)
    out = []
    for line in lines[start:]:
        if not line.startswith("│"):
            break
        out.append(line)
    return out


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("│").split("│")]


def test_the_table_prints_the_oracles_figures_for_each_length():
    text = table(_run())
    assert text.startswith(" SIMULATED  these figures come from qwenchat's emulated phone")
    ttft = o_summary(TTFT_64)
    r64 = [cells(line) for line in row_lines(text, "64")]
    assert r64[0] == [
        "64", f"{o_median(TTFT_64):.1f}", f"±{ttft['stddev']:.1f}  120.0–900.0",
        "within ±15%", "min 120.0", f"{o_median(DECODE_64):.2f}", "within ±15%",
        f"{64 / 0.160:,.0f} / {128 / 0.160:,.0f}", f"{o_median(HOST_FIRST_64):.1f}", "5/1",
    ]
    # By hand: 160/170.593 = 93.8%; 120 ms is 29.7% faster; decode 13/13.65 = 95.2%.
    assert r64[1][3:7] == ["93.8% of published", "faster by 29.7%",
                           f"±{o_summary(DECODE_64)['stddev']:.2f} 10.00–30.00",
                           "95.2% of published"]
    assert r64[1][2] == f"p10 {ttft['p10']:.1f} p90 {ttft['p90']:.1f}"
    assert r64[2][3:5] == ["published 170.6", "70.3% of published"]
    r4100 = [cells(line) for line in row_lines(text, "4100")]
    assert r4100[0][:5] == ["4100", f"{o_median(TTFT_4100):,.1f}", "±141.4  6000.0–6200.0",
                            "-", "-"]
    assert r4100[0][8:] == ["-", "2/0"]
    assert r4100[1][0] == "(asked 4200)"
    # 11 vs 13.65 tok/s: 80.6% of published, slower by 19.4%.
    assert (r4100[0][6], r4100[1][6]) == ("slower by 19.4%", "80.6% of published")
    assert "1 failed trial(s):\n  64 tokens, rep 6 (failed): Genie failed to load the model\n" in text


def test_the_engine_line_names_only_an_engine_other_than_the_default():
    assert "engine:" not in table(_run())
    run = _run()
    run.context = dataclasses.replace(run.context, engine="session")
    assert ("engine: session (warm dialog: one genie-app, model loaded once, dialog reset "
            "between trials)\n") in table(run)


def test_an_early_end_and_the_cool_down_waits_are_reported():
    run = _run()
    run.status, run.note = RunStatus.INTERRUPTED, "stopped by Ctrl-C after 8 trials"
    run.trials[1].cooldown = CooldownResult(3.5, True, 46.0, 40.0, "auto")
    run.trials[2].cooldown = CooldownResult(10.25, False, 50.0, 47.0, "auto")
    text = table(run)
    assert "(interrupted)" in text.splitlines()[1]
    assert "run ended early: stopped by Ctrl-C after 8 trials\n" in text
    assert ("Cool-down (host clock): 13.8 s waited before 2 trial(s), 1 stopped at the wait "
            "bound while still warm.\n") in text
    run.trials[2].cooldown = CooldownResult(10.25, True, 50.0, 40.0, "auto")
    assert "Cool-down (host clock): 13.8 s waited before 2 trial(s).\n" in table(run)


def test_without_published_figures_the_table_says_so_instead_of_a_verdict():
    text = table(_run(published_key=None))
    r64 = [cells(line) for line in row_lines(text, "64")]
    assert r64[0][3:5] == ["no published figure", "no published figure"]
    assert r64[0][6] == "no published figure"
    assert "no published figure for qwen2-7b-instruct: no verdict.\n" in text
    assert "Published:" not in text
    # Qualcomm's harness is how the published figures were measured: no figures, no line.
    assert "Qualcomm's harness" not in text
    assert "· Qualcomm's harness: one warm-up run, 25 trials" in table(_run())


def test_a_colour_terminal_gets_no_number_highlighting(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = table(_run())
    assert "\x1b[" in text  # colour is on: the SIMULATED banner is styled
    assert "\x1b[1;36m" not in text  # Rich's highlighter paints numbers bold cyan


def test_json_lines_hold_one_object_per_trial_then_per_length():
    report = build_report(_run())
    out = io.StringIO()
    write_jsonl(report, out)
    text = out.getvalue()
    assert text.endswith("}\n")
    rows = [json.loads(line) for line in text.split("\n")[:-1]]
    assert [r["type"] for r in rows] == ["trial"] * 9 + ["length"] * 2
    assert [r["rep"] for r in rows[:7]] == [-1, 0, 1, 2, 3, 4, 5]
    for r in rows:
        assert (r["run_id"], r["model"], r["simulated"], r["engine"],
                r["verdict_statistic"]) == ("20261130-000000-abcdef", "qwen2-7b-instruct", True,
                                            "process", "median")
    assert rows[9]["length"] == 64
    assert rows[9]["ttft_ms"] == pytest.approx(o_summary(TTFT_64))
    assert rows[10]["samples"]["ttft_ms"] == TTFT_4100


def test_the_json_report_is_indented_and_keeps_non_ascii():
    out = io.StringIO()
    write_json(build_report(_run()), out)
    text = out.getvalue()
    assert text.startswith('{\n  "run_id": "20261130-000000-abcdef",\n  "status": "done",\n')
    assert text.endswith("\n}\n")
    assert "within ±15% of the published figure" in text
    assert json.loads(text)["lengths"][0]["ttft_ms"]["median"] == o_median(TTFT_64)
