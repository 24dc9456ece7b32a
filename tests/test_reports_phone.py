"""Bench reports rendered from runs stored by a real `qwenchat bench` against the emulated
phone (real ADB sockets, simulated genie-t2t-run, real tokenizer, real SQLite store):
Markdown, CSV, plot (PNG/SVG), terminal chart, roofline, `qwenchat results`."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

TIME_SCALE = 0.01


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bench_run(emulator_factory, adb_key, synthetic_bundle, capsys, tmp_path):
    """Factory: run `qwenchat bench` on a fresh emulated phone; returns the JSON report."""
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.layout import PhoneLayout

    opened = []

    def make(*args: str, prefill_chunk_ms: float | None = None, jitter: bool = False,
             **overrides) -> dict:
        if prefill_chunk_ms is not None:
            profile = tmp_path / f"profile-{len(opened)}.json"
            profile.write_text(json.dumps({
                "prefill_chunk_ms": prefill_chunk_ms, "decode_tok_s": 14, "init_ms": 30,
                "free_ms": 5, "chunk_tokens": 128, "jitter_pct": 3 if jitter else 0,
            }))
            overrides["genie_profile"] = profile
        overrides.setdefault("time_scale", TIME_SCALE)
        emu = emulator_factory(authorized_keys=[adb_key], jitter=jitter, **overrides)
        dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
        opened.append(dev)
        plan = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750",
                           tokenizer=synthetic_bundle.tokenizer)
        push_assets(dev, plan, PhoneLayout())
        code, out, err = cli(capsys, "bench", "--connect", emu.address, "--transport",
                             "direct", "--cooldown", "0", "--seed", "5", "--gen-len", "4",
                             "--warmup", "0", *args, "-o", "json")
        assert code == 0, err
        return json.loads(out)

    yield make
    for dev in opened:
        dev.close()


def _md_rows(md: str) -> dict[int, list[str]]:
    rows = {}
    for line in md.splitlines():
        m = re.match(r"^\| (\d+)[ |]", line)
        if m:
            rows[int(m.group(1))] = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return rows


def test_markdown_and_csv_carry_the_reports_numbers(bench_run, capsys):
    report = bench_run("-p", "64,300", "-r", "3", jitter=True)
    run_id = report["run_id"]
    code, md, err = cli(capsys, "results", "show", run_id, "-o", "md")
    assert code == 0, err
    assert "> **SIMULATED**" in md and f"`{run_id}`" in md and "SM8750" in md
    rows = _md_rows(md)
    assert sorted(rows) == [64, 300]
    for length in report["lengths"]:
        row = rows[length["length"]]
        assert row[1] == f"{length['ttft_ms']['median']:,.1f}"
        assert row[2] == f"{length['ttft_ms']['min']:,.1f}"
        assert row[3] == f"{length['ttft_ms']['p10']:,.1f}–{length['ttft_ms']['p90']:,.1f}"
        assert row[4] == f"{length['ttft_vs_published']['expected']:,.1f}"
        assert f"{length['ttft_vs_published']['ratio_pct']:.1f}%" in row[5]
        assert f"{length['ttft_min_vs_published']['ratio_pct']:.1f}%" in row[6]
        assert row[7] == f"{length['decode_tok_s']['median']:,.2f}"
        assert row[11] == "3/0"
    # The separator row has as many cells as the header: it renders as a table.
    header, sep = [line for line in md.splitlines() if line.startswith("| prompt tok")][0], \
        [line for line in md.splitlines() if line.startswith("|---")][0]
    assert header.count(" | ") == sep.count("|") - 2
    assert "Roofline: omitted: the bundle is synthetic" in md

    code, text, err = cli(capsys, "results", "show", run_id, "-o", "csv")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["length"]) for r in table] == [64, 300]
    for row, length in zip(table, report["lengths"], strict=True):
        assert float(row["genie_ttft_ms_median"]) == pytest.approx(length["ttft_ms"]["median"])
        assert float(row["genie_decode_tok_s_p90"]) == pytest.approx(
            length["decode_tok_s"]["p90"])
        assert row["ttft_verdict"] == length["ttft_vs_published"]["verdict"]
        assert row["simulated"] == "True"


def test_bench_writes_md_and_plot_directly(bench_run, capsys, tmp_path, emulator_factory):
    """`bench -o md --plot F.svg` (the flags added to cmd_bench) on a stored run via --show."""
    report = bench_run("-p", "64,200,300", "-r", "2")
    svg = tmp_path / "run.svg"
    code, out, err = cli(capsys, "bench", "--show", report["run_id"], "-o", "md",
                         "--plot", str(svg))
    assert code == 0, err
    assert out.startswith("### qwenchat bench:") and str(svg) in err
    # The SVG keeps each series as a group whose markers are one <use> per point.
    root = ET.parse(svg).getroot()
    groups = {g.get("id"): g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id")}
    def points(gid: str) -> int:
        return sum(1 for e in groups[gid].iter() if e.tag.endswith("use"))
    assert points("ttft-measured") == 3 and points("ttft-published") == 3
    assert points("ttft-samples") == 6  # 3 lengths x 2 trials
    assert points("decode-measured") == 3
    assert points("temperature") == 6
    text = svg.read_text()
    assert "SIMULATED" in text and "SM8750" in text


def test_plot_data_and_figure_hold_the_reports_figures(bench_run, tmp_path):
    from qwenchat.bench.plot import build_figure, plot_data, write_plot
    from qwenchat.bench.report import build_report
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    report_json = bench_run("-p", "64,300", "-r", "2", prefill_chunk_ms=120)
    with open_store() as store:
        stored = BenchStorage(store).load_run(report_json["run_id"])
    report = build_report(stored)
    data = plot_data(report, created_at=stored.created_at)
    assert data.simulated and "SIMULATED" in data.title and "SM8750" in data.title
    assert data.ttft_measured.x == [64, 300]
    assert data.ttft_measured.y == [r["ttft_ms"]["median"] for r in report_json["lengths"]]
    # the published line is ceil(n/128) x 170.593
    assert data.ttft_published.y == pytest.approx([170.593, 3 * 170.593])
    assert data.decode_published.y == [13.65, 13.65]
    hottest = [t["thermal_after"]["hottest_c"] for t in report_json["trials"]]
    assert data.temperature.y == hottest and len(hottest) == 4
    fig = build_figure(data)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    assert list(lines["ttft-measured"].get_xdata()) == [64, 300]
    assert list(lines["ttft-measured"].get_ydata()) == data.ttft_measured.y
    assert list(lines["temperature"].get_ydata()) == hottest
    png = tmp_path / "run.png"
    write_plot(report, png, created_at=stored.created_at)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (990, 1100)  # 9 x 10 in at 110 dpi


def test_table_shows_roofline_and_chart(bench_run, capsys):
    # 30 s per chunk at time scale 0.01: 300 ms per 128-token chunk, slower than published
    report = bench_run("-p", "64,300", "-r", "1", prefill_chunk_ms=30000)
    code, out, err = cli(capsys, "results", "show", "last")
    assert code == 0, err
    assert "Roofline: omitted: the bundle is synthetic (4.2 MB" in out
    assert "TTFT by prompt length" in out and "SIMULATED" in out
    blocks = "█▉▊▋▌▍▎▏"

    def bar_len(line: str) -> int:
        return sum(1 for ch in line if ch in blocks)

    chart = [line for line in out.splitlines() if re.match(r"^\s+\d+ measured", line)]
    published = [line for line in out.splitlines() if re.match(r"^\s+published ", line)]
    assert len(chart) == 2 and len(published) == 2, out
    for m, p, length in zip(chart, published, report["lengths"], strict=True):
        assert f"{length['ttft_ms']['median']:,.1f} ms" in m
        assert bar_len(m) > bar_len(p) > 0
        assert "slower by" in p
    # the longest bar fills the chart width (40 cells)
    assert max(bar_len(line) for line in chart) == 40
    code, out, _ = cli(capsys, "results", "show", report["run_id"][:17], "--no-chart")
    assert code == 0 and "TTFT by prompt length" not in out


def test_results_list_export_and_bad_ids(bench_run, capsys, tmp_path):
    first = bench_run("-p", "64", "-r", "1")["run_id"]
    second = bench_run("-p", "64,300", "-r", "1")["run_id"]
    code, out, err = cli(capsys, "results", "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [second, first]
    assert rows[0]["lengths"] == [64, 300] and rows[0]["soc"] == "SM8750"
    assert rows[0]["simulated"] is True and rows[0]["status"] == "done"
    code, out, _ = cli(capsys, "results", "list")
    assert code == 0 and first in out and "SIMULATED" in out

    dest = tmp_path / "trials.csv"
    code, _, err = cli(capsys, "results", "export", second, "-o", "csv", "--file", str(dest))
    assert code == 0, err
    trials = list(csv.DictReader(dest.open()))
    assert [int(t["length"]) for t in trials] == [64, 300]
    code, out, _ = cli(capsys, "results", "export", "last")
    exported = json.loads(out)
    assert exported["run_id"] == second
    for t, row in zip(exported["trials"], trials, strict=True):
        assert float(row["genie_ttft_ms"]) == t["result"]["genie"]["ttft_ms"]

    common = len(__import__("os").path.commonprefix([first, second]))
    for ref, message in [("nope", "no bench run 'nope'"),
                         (first[:common], "matches 2 bench runs")]:
        code, out, err = cli(capsys, "results", "show", ref)
        assert code != 0 and message in err and "Traceback" not in err
    code, _, err = cli(capsys, "results", "show", "last", "-o", "pdf")
    assert code != 0 and "not an output format" in err


def test_compare_two_phones_verdict_beyond_spread(bench_run, capsys):
    """Phone B prefills in 100 ms/chunk, phone A in 200: TTFT faster beyond the spread;
    decode is the same profile on both: within the spread (or same)."""
    # Scale 0.1 (20 vs 10 ms a chunk): at 0.01 a busy host's oversleeping, a few ms, is as
    # large as the difference itself and widens the spread past it.
    a = bench_run("-p", "64,300", "-r", "3", prefill_chunk_ms=200, jitter=True,
                  time_scale=0.1)["run_id"]
    b = bench_run("-p", "64,300", "-r", "3", prefill_chunk_ms=100, jitter=True,
                  time_scale=0.1)["run_id"]
    code, out, err = cli(capsys, "results", "compare", a, b, "-o", "json")
    assert code == 0, err
    result = json.loads(out)
    assert [d["length"] for d in result["lengths"]] == [64, 300]
    for d in result["lengths"]:
        assert d["ttft"]["direction"] == "faster" and d["ttft"]["beyond_spread"] is True
        assert d["ttft"]["diff"] == pytest.approx(d["ttft"]["b_median"] - d["ttft"]["a_median"])
        # The size of the gain is the host's timing at time scale 0.01 (it shrinks under
        # load): the percentage must be the one the medians give, and a gain.
        t = d["ttft"]
        assert t["diff_pct"] == pytest.approx(100 * (t["b_median"] - t["a_median"]) / t["a_median"])
        assert t["diff_pct"] < 0
    # (decode is left unasserted: at time scale 0.01 it is host-timing noise)
    assert result["verdict"].startswith("B differs from A beyond the runs' spread: TTFT faster")
    assert any("both runs are SIMULATED" in w for w in result["warnings"])
    code, out, _ = cli(capsys, "results", "compare", a, b)
    assert code == 0 and "Verdict:" in out and "TTFT faster at 64, 300 tokens" in out
    # A run against itself is refused (issue #27): a verdict of "no difference" would be a lie
    # about two measurements that are one.
    code, same, err = cli(capsys, "results", "compare", a, a, "-o", "md")
    assert code == 2 and same == "" and "are the same run" in err

    # A run relabelled as real (as a real phone's run would be stored) mixed with a simulated one
    from dataclasses import replace

    from qwenchat.bench.compare import compare_reports
    from qwenchat.bench.report import build_report
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    with open_store() as store:
        run_a = BenchStorage(store).load_run(a)
    real = replace(run_a, context=replace(run_a.context, simulated=False))
    mixed = compare_reports(build_report(real), build_report(run_a))
    assert any("mixes a SIMULATED run" in w for w in mixed.warnings)
    # The same trials under two runs' names (what the CLI no longer lets one run be): the
    # verdict says no difference, never a direction.
    twin = compare_reports(build_report(run_a), build_report(replace(run_a, id=run_a.id + "-copy")))
    assert twin.verdict == "no difference beyond the runs' spread."
