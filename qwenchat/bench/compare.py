"""Comparing two stored bench runs (two phones, two QAIRT versions, before/after a change).

Per prompt length measured in both runs, for TTFT and decode tok/s (Genie's profiler): the
difference of medians (B − A) and whether it exceeds the runs' own spread.

The rule (SPREAD_RULE): a difference counts only when |B − A| is larger than BOTH runs'
p10–p90 half-widths at that length, i.e. B's median lies outside A's middle 80% of trials and
A's outside B's. With fewer than MIN_SAMPLES measured trials on either side the spread is not
known and the difference is reported as ``unknown``, never as real.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from qwenchat.bench.formats import run_date
from qwenchat.bench.report import BenchReport
from qwenchat.bench.stats import Summary
from qwenchat.errors import UsageError

MIN_SAMPLES = 3
SPREAD_RULE = (
    "A difference counts when |B − A| of the medians exceeds both runs' p10–p90 half-widths "
    f"at that length; with fewer than {MIN_SAMPLES} trials on either side it is 'unknown'."
)


@dataclass
class MetricDiff:
    metric: str  # "ttft_ms" | "decode_tok_s"
    a_median: float
    b_median: float
    diff: float  # B − A
    diff_pct: float  # (B − A) / A x 100
    a_halfwidth: float  # (p90 − p10) / 2
    b_halfwidth: float
    n_a: int
    n_b: int
    beyond_spread: bool | None  # None: too few trials to know
    direction: str  # "faster" | "slower" | "same" (B relative to A)


@dataclass
class LengthDiff:
    length: int
    ttft: MetricDiff | None
    decode: MetricDiff | None


@dataclass
class RunComparison:
    a: dict[str, Any]  # id, model, device, soc, simulated, libgenie, date (JSON-ready)
    b: dict[str, Any]
    lengths: list[LengthDiff]
    only_a: list[int]
    only_b: list[int]
    warnings: list[str]
    verdict: str
    rule: str = SPREAD_RULE
    changes: list[str] = field(default_factory=list)  # what differs between the runs' setups

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _diff(
    metric: str, a: Summary | None, b: Summary | None, *, higher_is_faster: bool
) -> MetricDiff | None:
    if a is None or b is None:
        return None
    d = b.median - a.median
    hw_a, hw_b = (a.p90 - a.p10) / 2, (b.p90 - b.p10) / 2
    beyond = None
    if a.n >= MIN_SAMPLES and b.n >= MIN_SAMPLES:
        beyond = abs(d) > hw_a and abs(d) > hw_b
    if d == 0:
        direction = "same"
    else:
        direction = "faster" if (d > 0) == higher_is_faster else "slower"
    return MetricDiff(
        metric, a.median, b.median, d, d / a.median * 100 if a.median else 0.0,
        hw_a, hw_b, a.n, b.n, beyond, direction,
    )


def _side(report: BenchReport, created_at: float | None) -> dict[str, Any]:
    ctx = report.context
    dev = ctx.device
    return {
        "id": report.run_id, "model": report.model, "device": dev.model,
        "serial": dev.serial, "soc": dev.soc, "simulated": report.simulated,
        "libgenie_version": ctx.libgenie_version, "config_hash": ctx.config_hash,
        "bundle_manifest_hash": ctx.bundle_manifest_hash,
        "gen_len": report.plan.gen_len,
        "date": run_date(created_at if created_at is not None else report.created_at),
    }


def compare_reports(
    a: BenchReport,
    b: BenchReport,
    *,
    a_created: float | None = None,
    b_created: float | None = None,
    allow_different_models: bool = False,
) -> RunComparison:
    """Compare two ``BenchReport``s: B against A. Runs of two models are refused (UsageError)
    unless ``allow_different_models``: their differences would be the models', not the
    phones'."""
    if a.model != b.model and not allow_different_models:
        raise UsageError(
            f"run {a.run_id} measured {a.model} and run {b.run_id} measured {b.model}: "
            "not compared",
            hint="Compare runs of one model, or add --allow-different-models.",
        )
    by_a = {r.length: r for r in a.lengths}
    by_b = {r.length: r for r in b.lengths}
    common = sorted(set(by_a) & set(by_b))
    diffs = [
        LengthDiff(
            n,
            _diff("ttft_ms", by_a[n].ttft_ms, by_b[n].ttft_ms, higher_is_faster=False),
            _diff("decode_tok_s", by_a[n].decode_tok_s, by_b[n].decode_tok_s,
                  higher_is_faster=True),
        )
        for n in common
    ]
    side_a, side_b = _side(a, a_created), _side(b, b_created)
    warnings = []
    if a.model != b.model:
        warnings.append(
            f"the runs measured different models ({a.model} vs {b.model}): the differences "
            "are the models' as much as the phones'"
        )
    if a.simulated != b.simulated:
        sim = a.run_id if a.simulated else b.run_id
        warnings.append(
            f"this comparison mixes a SIMULATED run ({sim}) with a real one: the differences "
            "say nothing about either phone"
        )
    elif a.simulated:
        warnings.append("both runs are SIMULATED (emulated phone)")
    if not common:
        warnings.append("the runs share no prompt length: nothing to compare")
    if side_a["gen_len"] != side_b["gen_len"]:
        warnings.append(
            f"gen-len differs ({side_a['gen_len']} vs {side_b['gen_len']}): decode rates "
            "over different lengths of output"
        )
    changes = [
        f"{key}: {side_a[key]} → {side_b[key]}"
        for key in ("model", "device", "serial", "soc", "libgenie_version", "config_hash",
                    "bundle_manifest_hash")
        if side_a[key] != side_b[key]
    ]
    return RunComparison(
        side_a, side_b, diffs, sorted(set(by_a) - set(by_b)), sorted(set(by_b) - set(by_a)),
        warnings, _verdict(diffs), changes=changes,
    )


def _verdict(diffs: list[LengthDiff]) -> str:
    parts = []
    unknown = False
    for name, pick in (("TTFT", lambda d: d.ttft), ("decode", lambda d: d.decode)):
        found = [(d.length, pick(d)) for d in diffs if pick(d) is not None]
        unknown |= any(m.beyond_spread is None for _, m in found)
        for direction in ("faster", "slower"):
            at = [str(n) for n, m in found if m.beyond_spread and m.direction == direction]
            if at:
                parts.append(f"{name} {direction} at {', '.join(at)} tokens")
    if parts:
        return "B differs from A beyond the runs' spread: " + "; ".join(parts) + "."
    if unknown:
        return (f"no difference shown: too few trials (< {MIN_SAMPLES}) at some lengths to "
                "know the spread.")
    return "no difference beyond the runs' spread."


# ----- rendering
def _row(m: MetricDiff | None, digits: int) -> tuple[str, str, str, str]:
    if m is None:
        return "-", "-", "-", "-"
    mark = {True: "beyond spread", False: "within spread", None: "unknown (few trials)"}
    return (
        f"{m.a_median:,.{digits}f} ±{m.a_halfwidth:,.{digits}f}",
        f"{m.b_median:,.{digits}f} ±{m.b_halfwidth:,.{digits}f}",
        f"{m.diff:+,.{digits}f} ({m.diff_pct:+.1f}%)",
        f"{m.direction}, {mark[m.beyond_spread]}" if m.direction != "same" else "same",
    )


_HEAD = ["prompt tok", "TTFT A ms", "TTFT B ms", "TTFT B−A", "TTFT", "decode A tok/s",
         "decode B tok/s", "decode B−A", "decode"]


def _rows(c: RunComparison) -> list[list[str]]:
    return [[str(d.length), *_row(d.ttft, 1), *_row(d.decode, 2)] for d in c.lengths]


def _sides(c: RunComparison) -> list[str]:
    out = []
    for name, s in (("A", c.a), ("B", c.b)):
        sim = " SIMULATED" if s["simulated"] else ""
        out.append(f"{name}: {s['id']} · {s['model']} · {s['device']} · SoC {s['soc']} · libGenie "
                   f"{s['libgenie_version'] or '?'} · {s['date']}{sim}")
    return out


def write_comparison_table(c: RunComparison, out: IO[str], *, width: int | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=width or 160, highlight=False, soft_wrap=False)
    for w in c.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(w)}")
    for line in _sides(c):
        console.print(escape(line))
    if c.changes:
        console.print("[dim]changed: " + escape("; ".join(c.changes)) + "[/]")
    table = Table(show_lines=False)
    for i, h in enumerate(_HEAD):
        table.add_column(h, justify="left" if i in (4, 8) else "right")
    for row in _rows(c):
        table.add_row(*(escape(x) for x in row))
    console.print(table)
    console.print("[dim]± is each run's p10–p90 half-width; figures from Genie's profiler.[/]")
    if c.only_a or c.only_b:
        console.print(f"[dim]only in A: {c.only_a or '-'}; only in B: {c.only_b or '-'}[/]")
    console.print(f"[bold]Verdict:[/] {escape(c.verdict)}")
    console.print(f"[dim]{escape(c.rule)}[/]")


def write_comparison_markdown(c: RunComparison, out: IO[str]) -> None:
    lines = [f"### qwenchat bench compare: {c.a['id']} (A) vs {c.b['id']} (B)", ""]
    lines += [f"> **Warning:** {w}" for w in c.warnings]
    if c.warnings:
        lines.append("")
    lines += [f"- {s}" for s in _sides(c)]
    if c.changes:
        lines.append("- changed: " + "; ".join(c.changes))
    lines += ["", "| " + " | ".join(_HEAD) + " |",
              "|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(c)]
    lines += ["", f"**Verdict:** {c.verdict}", "", f"_{c.rule}_"]
    out.write("\n".join(lines) + "\n")


def write_comparison_json(c: RunComparison, out: IO[str]) -> None:
    out.write(json.dumps(c.as_json(), indent=2, ensure_ascii=False) + "\n")


def write_comparison_csv(c: RunComparison, out: IO[str]) -> None:
    w = csv.writer(out, lineterminator="\n")
    fields = ["a_median", "b_median", "diff", "diff_pct", "a_halfwidth", "b_halfwidth",
              "n_a", "n_b", "beyond_spread", "direction"]
    w.writerow(["a_run", "b_run", "length", "metric", *fields])
    for d in c.lengths:
        for m in (d.ttft, d.decode):
            if m is not None:
                w.writerow([c.a["id"], c.b["id"], d.length, m.metric,
                            *(getattr(m, f) for f in fields)])
