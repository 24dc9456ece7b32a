"""A fleet run (``bench --all``) as one report: a row per phone and prompt length.

Each phone's figures and verdict are its own run's ``build_report`` (the published figures
it finds for the run's model and chip, the verdict rules of ``report.py``): this module
only lines them up. A phone that ended early shows what it measured and why it ended; one
that measured nothing is one row saying so. Formats: a terminal table, Markdown, CSV,
JSON (everything) and JSONL (a line per row); a plot of TTFT against prompt length with a
line per phone and the published line per chip.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from qwenchat.bench.fleet_storage import FleetRecord
from qwenchat.bench.report import BenchReport, build_report
from qwenchat.bench.storage import BenchStorage

COLUMNS = (
    "phone", "chip", "status", "prompt_tokens", "ttft_ms_median", "ttft_published_ms",
    "ttft_verdict", "decode_tok_s_median", "decode_published_tok_s", "decode_verdict",
    "trials_ok", "trials_failed", "qairt_version", "libgenie_version", "simulated", "run_id",
)  # fmt: skip


@dataclass
class FleetRow:
    phone: str
    chip: str | None
    status: str  # the phone's end in the fleet run: done, lost, failed, ...
    prompt_tokens: int | None
    ttft_ms_median: float | None  # genie profiler
    ttft_published_ms: float | None
    ttft_verdict: str | None
    decode_tok_s_median: float | None  # genie profiler
    decode_published_tok_s: float | None
    decode_verdict: str | None
    trials_ok: int
    trials_failed: int
    qairt_version: str | None
    libgenie_version: str | None
    simulated: bool
    run_id: str | None
    note: str | None = None


@dataclass
class FleetReport:
    fleet_id: str
    created_at: float
    model: str | None
    rows: list[FleetRow]
    phones: list[dict[str, Any]]  # per phone: name, status, run id, note, chip
    reports: dict[str, BenchReport] = field(default_factory=dict)  # by phone name

    @property
    def simulated(self) -> bool:
        return any(r.simulated for r in self.rows)

    def as_json(self) -> dict[str, Any]:
        return {
            "fleet_id": self.fleet_id, "created_at": self.created_at, "model": self.model,
            "simulated": self.simulated, "phones": self.phones,
            "rows": [asdict(r) for r in self.rows],
            "runs": {name: rep.as_json() for name, rep in self.reports.items()},
        }  # fmt: skip


def build_fleet_report(fleet: FleetRecord, storage: BenchStorage) -> FleetReport:
    rows: list[FleetRow] = []
    phones: list[dict[str, Any]] = []
    reports: dict[str, BenchReport] = {}
    model = fleet.options.get("model")
    for phone in fleet.phones:
        run = storage.load_run(phone.run_id) if phone.run_id else None
        facts = phone.facts or {}
        info = {"phone": phone.phone, "status": phone.status, "run_id": phone.run_id,
                "note": phone.note, "chip": None, "qairt_version": facts.get("qairt_version")}  # fmt: skip
        if run is None:
            phones.append(info)
            rows.append(FleetRow(phone.phone, None, phone.status, None, None, None, None, None,
                                 None, None, 0, 0, facts.get("qairt_version"), None, False,
                                 phone.run_id, phone.note))  # fmt: skip
            continue
        report = build_report(run)
        reports[phone.phone] = report
        model = model or report.model
        ctx = report.context
        info["chip"] = ctx.device.soc
        phones.append(info)
        if not report.lengths:
            rows.append(FleetRow(phone.phone, ctx.device.soc, phone.status, None, None, None,
                                 None, None, None, None, 0, report.failed_count,
                                 facts.get("qairt_version"), ctx.libgenie_version,
                                 report.simulated, run.id, phone.note))  # fmt: skip
        for length in report.lengths:
            t, d = length.ttft_vs_published, length.decode_vs_published
            rows.append(FleetRow(
                phone.phone, ctx.device.soc, phone.status, length.length,
                length.ttft_ms.median if length.ttft_ms else None,
                t.expected if t else None, t.verdict if t else None,
                length.decode_tok_s.median if length.decode_tok_s else None,
                d.expected if d else None, d.verdict if d else None,
                length.trials_ok, length.trials_failed, facts.get("qairt_version"),
                ctx.libgenie_version, report.simulated, run.id, phone.note,
            ))  # fmt: skip
    return FleetReport(fleet.id, fleet.created_at, model, rows, phones, reports)


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _cells(row: FleetRow) -> list[str]:
    sim = " SIMULATED" if row.simulated else ""
    return [
        row.phone, (row.chip or "?") + sim, row.status, _cell(row.prompt_tokens),
        _cell(row.ttft_ms_median), _cell(row.ttft_published_ms), row.ttft_verdict or "-",
        _cell(row.decode_tok_s_median, 2), _cell(row.decode_published_tok_s, 2),
        row.decode_verdict or "-", f"{row.trials_ok}/{row.trials_failed}",
        row.qairt_version or "?", row.libgenie_version or "?",
    ]  # fmt: skip


HEADERS = ("phone", "chip", "status", "prompt tok", "TTFT ms median (genie)",
           "TTFT published ms", "TTFT verdict", "decode tok/s median (genie)",
           "decode published tok/s", "decode verdict", "ok/failed", "QAIRT", "libGenie")  # fmt: skip


def headline(report: FleetReport) -> str:
    ended: dict[str, int] = {}
    for p in report.phones:
        ended[p["status"]] = ended.get(p["status"], 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in ended.items())
    return (f"fleet bench run {report.fleet_id} · model {report.model or '?'} · "
            f"{len(report.phones)} phone(s): {counts}")  # fmt: skip


def write_table(report: FleetReport, out: IO[str], *, width: int | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=width or 200, highlight=False, soft_wrap=False)
    if report.simulated:
        console.print("[bold yellow] SIMULATED [/] figures from qwenchat's emulated phones, "
                      "not from a Snapdragon NPU")  # fmt: skip
    table = Table(title=escape(headline(report)), title_justify="left")
    for header in HEADERS:
        table.add_column(header, no_wrap=header == "phone")
    for row in report.rows:
        table.add_row(*(escape(c) for c in _cells(row)))
    console.print(table)
    for p in report.phones:
        if p["status"] != "done":
            resume = " (resume with --resume " + report.fleet_id + ")" if p["status"] in (
                "lost", "interrupted", "pending", "running") else ""  # fmt: skip
            console.print(f"[yellow]{escape(p['phone'])}: {escape(p['status'])}[/]"
                          f"{': ' + escape(p['note']) if p['note'] else ''}{resume}")  # fmt: skip


def write_markdown(report: FleetReport, out: IO[str]) -> None:
    out.write(f"**{headline(report)}**\n\n")
    if report.simulated:
        out.write("**SIMULATED**: figures from qwenchat's emulated phones, not from a "
                  "Snapdragon NPU.\n\n")  # fmt: skip
    out.write("| " + " | ".join(HEADERS) + " |\n")
    out.write("|" + "---|" * len(HEADERS) + "\n")
    for row in report.rows:
        out.write("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |\n")


def write_csv(report: FleetReport, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["fleet_id", *COLUMNS])
    for row in report.rows:
        data = asdict(row)
        writer.writerow([report.fleet_id, *("" if data[c] is None else data[c] for c in COLUMNS)])


def write_jsonl(report: FleetReport, out: IO[str]) -> None:
    for row in report.rows:
        out.write(json.dumps({"fleet_id": report.fleet_id, **asdict(row)}) + "\n")


def write_fleet_report(report: FleetReport, fmt: str, out: IO[str]) -> None:
    if fmt == "table":
        write_table(report, out)
    elif fmt == "md":
        write_markdown(report, out)
    elif fmt == "csv":
        write_csv(report, out)
    elif fmt == "json":
        out.write(json.dumps(report.as_json(), indent=2) + "\n")
    elif fmt == "jsonl":
        write_jsonl(report, out)
    else:  # pragma: no cover - parse_format guards this
        raise ValueError(fmt)


def write_fleet_plot(report: FleetReport, path: str) -> None:
    """TTFT (genie, median) against prompt length: a line per phone, and per chip the
    published line (dashed) where that chip has a published figure."""
    from qwenchat.bench.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
    published: dict[str, tuple[list[int], list[float]]] = {}
    for name, rep in report.reports.items():
        xs = [r.length for r in rep.lengths if r.ttft_ms is not None]
        ys = [r.ttft_ms.median for r in rep.lengths if r.ttft_ms is not None]
        if xs:
            ax.plot(xs, ys, marker="o", label=name, gid=f"phone-{name}")
        chip = rep.context.device.soc or "?"
        pub = [(r.length, r.ttft_vs_published.expected) for r in rep.lengths
               if r.ttft_vs_published is not None]  # fmt: skip
        if pub and chip not in published:
            published[chip] = ([x for x, _ in pub], [y for _, y in pub])
    for chip, (xs, ys) in published.items():
        ax.plot(xs, ys, linestyle="--", color="gray", marker="s", markersize=4,
                label=f"published ({chip})", gid=f"published-{chip}")  # fmt: skip
    sim = "\nSIMULATED: emulated phones, not a Snapdragon NPU" if report.simulated else ""
    ax.set_title(headline(report) + sim, fontsize=9,
                 color="darkred" if report.simulated else "black")  # fmt: skip
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("time to first token, median (ms, genie profiler)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.savefig(path)
    plt.close(fig)


@dataclass
class FleetComparison:
    """Fleet run B against fleet run A, phone by phone (phones matched by name): each pair
    compared by ``compare.compare_reports``, the one-run comparison's own rules."""

    a: str
    b: str
    phones: list[tuple[str, Any]]  # (phone, compare.RunComparison)
    only_a: list[str]
    only_b: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "only_a": self.only_a, "only_b": self.only_b,
                "phones": [{"phone": p, **c.as_json()} for p, c in self.phones]}  # fmt: skip


def compare_fleets(
    a: FleetReport, b: FleetReport, *, allow_different_models: bool = False
) -> FleetComparison:
    from qwenchat.bench.compare import compare_reports

    pairs = [
        (phone, compare_reports(a.reports[phone], b.reports[phone],
                                allow_different_models=allow_different_models))
        for phone in a.reports if phone in b.reports
    ]  # fmt: skip
    return FleetComparison(a.fleet_id, b.fleet_id, pairs,
                           [p for p in a.reports if p not in b.reports],
                           [p for p in b.reports if p not in a.reports])  # fmt: skip


def write_fleet_comparison(c: FleetComparison, fmt: str, out: IO[str]) -> None:
    from qwenchat.bench import compare as cmp

    head = ["phone", *cmp._HEAD]
    rows = [[phone, *row] for phone, comparison in c.phones for row in cmp._rows(comparison)]
    if fmt == "json":
        out.write(json.dumps(c.as_json(), indent=2, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        fields = ["a_median", "b_median", "diff", "diff_pct", "a_halfwidth", "b_halfwidth",
                  "n_a", "n_b", "beyond_spread", "direction"]  # fmt: skip
        writer.writerow(["a_fleet", "b_fleet", "phone", "length", "metric", *fields])
        for phone, comparison in c.phones:
            for d in comparison.lengths:
                for m in (d.ttft, d.decode):
                    if m is not None:
                        writer.writerow([c.a, c.b, phone, d.length, m.metric,
                                         *(getattr(m, f) for f in fields)])  # fmt: skip
        return
    verdicts = [f"{phone}: {comparison.verdict}" for phone, comparison in c.phones]
    missing = [f"only in A: {', '.join(c.only_a) or '-'}; only in B: {', '.join(c.only_b) or '-'}"]
    if fmt == "md":
        out.write(f"### qwenchat fleet compare: {c.a} (A) vs {c.b} (B)\n\n")
        out.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
        for row in rows:
            out.write("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |\n")
        out.write("\n" + "\n".join(f"- {line}" for line in [*verdicts, *missing]) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=200, highlight=False, soft_wrap=False)
    table = Table(title=f"fleet {c.a} (A) vs {c.b} (B)", title_justify="left")
    for i, h in enumerate(head):
        table.add_column(h, no_wrap=i == 0, justify="left" if i in (0, 5, 9) else "right")
    for row in rows:
        table.add_row(*(escape(x) for x in row))
    console.print(table)
    console.print("[dim]± is each run's p10–p90 half-width; figures from Genie's profiler.[/]")
    for line in [*verdicts, *missing]:
        console.print(escape(line))
