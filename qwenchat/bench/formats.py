"""Markdown and CSV renderings of a bench report (the table/json/jsonl ones are in report.py).

Markdown is GitHub-flavoured and pastes into an issue tracker as is; CSV has one row per
prompt length (``write_csv``) or one per trial with its raw samples (``write_trials_csv``).
Every figure is taken from the ``BenchReport`` that ``report.build_report`` made: nothing is
recomputed here. Column names carry the figure's source: ``genie_`` (Genie's profiler on the
phone) or ``host_`` (the host's clock around the adb command).
"""

from __future__ import annotations

import csv
import time
from typing import IO, Any

from qwenchat.bench.report import (
    BenchReport,
    Comparison,
    build_report,
    write_json,
    write_jsonl,
    write_table,
)
from qwenchat.bench.roofline import roofline
from qwenchat.bench.stats import Summary
from qwenchat.bench.termchart import write_chart
from qwenchat.errors import UsageError


def run_date(created_at: float | None) -> str:
    if created_at is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(created_at))


def headline(report: BenchReport, created_at: float | None = None) -> str:
    """Device, SoC and date in one line (titles of tables, charts and plots)."""
    dev = report.context.get("device") or {}
    sim = " · SIMULATED" if report.simulated else ""
    return (
        f"{dev.get('model', '?')} · SoC {dev.get('soc', '?')} · {run_date(created_at)}"
        f" · run {report.run_id}{sim}"
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _range(s: Summary | None, digits: int = 1) -> str:
    return "-" if s is None else f"{s.p10:,.{digits}f}–{s.p90:,.{digits}f}"


def _verdict(c: Comparison | None) -> str:
    if c is None:
        return "-"
    if c.verdict == "within":
        return f"within ±15% ({c.ratio_pct:.1f}%)"
    return f"**{c.verdict}** by {abs(c.margin_pct):.1f}% ({c.ratio_pct:.1f}%)"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(report: BenchReport, out: IO[str], *, created_at: float | None = None) -> None:

    ctx, pub, plan = report.context, report.published, report.plan
    dev = ctx.get("device") or {}
    title = f"### qwenchat bench: {_md_escape(headline(report, created_at))}"
    lines = [title, ""]
    if report.simulated:
        lines += [
            "> **SIMULATED**: these figures come from qwenchat's emulated phone, "
            "not from a Snapdragon NPU.",
            "",
        ]
    lines += [
        f"- Device: {_md_escape(dev.get('model', '?'))} `{dev.get('serial', '')}`, SoC "
        f"{dev.get('soc', '?')}, Android {dev.get('android_version', '?')}, libGenie "
        f"{ctx.get('libgenie_version') or '?'}",
        f"- Run `{report.run_id}` ({report.status}), {run_date(created_at)}: seed "
        f"{ctx.get('seed')}, gen-len {plan.get('gen_len')}, {plan.get('repetitions')} reps + "
        f"{plan.get('warmup')} warm-up, protocol {plan.get('protocol', 'default')}",
        "",
        "| prompt tok | TTFT ms (genie, median) | TTFT p10–p90 | published TTFT ms "
        f"| TTFT vs published | decode tok/s (genie, median) | decode p10–p90 "
        f"| decode vs {pub['decode_tok_s']:g} tok/s | first token ms (host, incl. init) "
        "| ok/failed |",
        "|---:|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for r in report.lengths:
        label = str(r.length) + (f" (asked {r.requested})" if r.clamped else "")
        lines.append(
            "| " + " | ".join([
                label,
                _num(r.ttft_ms.median if r.ttft_ms else None),
                _range(r.ttft_ms),
                _num(r.ttft_vs_published.expected if r.ttft_vs_published else None),
                _verdict(r.ttft_vs_published),
                _num(r.decode_tok_s.median if r.decode_tok_s else None, 2),
                _range(r.decode_tok_s, 2),
                _verdict(r.decode_vs_published),
                _num(r.host_first_token_ms.median if r.host_first_token_ms else None),
                f"{r.trials_ok}/{r.trials_failed}",
            ]) + " |"
        )
    lines += [
        "",
        f"Published: {pub['model']} on {_md_escape(pub['device'])} ({pub['source']}, "
        f"{pub['date']}): TTFT {pub['ttft_min_ms']:g}–{pub['ttft_max_ms']:g} ms, "
        f"{pub['decode_tok_s']:g} tok/s. Published TTFT per length = "
        f"ceil(n/128) × {pub['ttft_min_ms']:g} ms.",
        "",
        roofline(report).line(),
        "",
    ]
    lines += [f"- {_md_escape(note)}" for note in report.notes]
    if report.failures:
        lines += ["", f"**{len(report.failures)} failed trial(s):**", ""]
        for f in report.failures:
            kind = "warm-up" if f.warmup else f"rep {f.rep + 1}"
            lines.append(f"- {f.length} tokens, {kind}: {_md_escape(f.reason)}")
    out.write("\n".join(lines) + "\n")


def _s(s: Summary | None, attr: str) -> Any:
    return "" if s is None else getattr(s, attr)


def _c(c: Comparison | None, attr: str) -> Any:
    return "" if c is None else getattr(c, attr)


LENGTH_COLUMNS = [
    "run_id", "simulated", "device", "soc", "length", "requested", "clamped", "trials_ok",
    "trials_failed",
    "genie_ttft_ms_median", "genie_ttft_ms_p10", "genie_ttft_ms_p90", "genie_ttft_ms_stddev",
    "published_ttft_ms", "ttft_ratio_pct", "ttft_verdict", "ttft_margin_pct",
    "genie_decode_tok_s_median", "genie_decode_tok_s_p10", "genie_decode_tok_s_p90",
    "genie_decode_tok_s_stddev", "published_decode_tok_s", "decode_ratio_pct",
    "decode_verdict", "decode_margin_pct", "genie_prompt_tok_s_median", "padded_tokens",
    "host_first_token_ms_median", "host_overhead_ms_median",
]


def write_csv(report: BenchReport, out: IO[str]) -> None:
    """One row per prompt length: the summaries and verdicts of the report."""
    dev = report.context.get("device") or {}
    w = csv.writer(out, lineterminator="\n")
    w.writerow(LENGTH_COLUMNS)
    for r in report.lengths:
        w.writerow([
            report.run_id, report.simulated, dev.get("model", ""), dev.get("soc", ""),
            r.length, r.requested, r.clamped, r.trials_ok, r.trials_failed,
            _s(r.ttft_ms, "median"), _s(r.ttft_ms, "p10"), _s(r.ttft_ms, "p90"),
            _s(r.ttft_ms, "stddev"),
            _c(r.ttft_vs_published, "expected"), _c(r.ttft_vs_published, "ratio_pct"),
            _c(r.ttft_vs_published, "verdict"), _c(r.ttft_vs_published, "margin_pct"),
            _s(r.decode_tok_s, "median"), _s(r.decode_tok_s, "p10"), _s(r.decode_tok_s, "p90"),
            _s(r.decode_tok_s, "stddev"),
            _c(r.decode_vs_published, "expected"), _c(r.decode_vs_published, "ratio_pct"),
            _c(r.decode_vs_published, "verdict"), _c(r.decode_vs_published, "margin_pct"),
            _s(r.prompt_tok_s, "median"), r.padded_tokens,
            _s(r.host_first_token_ms, "median"), _s(r.host_overhead_ms, "median"),
        ])


TRIAL_COLUMNS = [
    "run_id", "simulated", "length", "requested", "rep", "warmup", "ok", "stop_reason",
    "error", "genie_ttft_ms", "genie_decode_tok_s", "genie_prompt_tok_s", "genie_init_ms",
    "genie_generated_tokens", "host_first_token_ms", "host_total_ms", "host_overhead_ms",
    "hottest_c_before", "hottest_c_after", "cooldown_waited_s",
]


def write_trials_csv(report: BenchReport, out: IO[str]) -> None:
    """One row per trial (warm-ups and failures included): the raw samples."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(TRIAL_COLUMNS)
    for t in report.trials:
        result = t.get("result") or {}
        genie, host = result.get("genie") or {}, result.get("host") or {}
        w.writerow([
            report.run_id, report.simulated, t["length"], t["requested"], t["rep"],
            t["warmup"], t["ok"], t["stop_reason"], t.get("error") or "",
            genie.get("ttft_ms", ""), genie.get("decode_tok_s", ""),
            genie.get("prompt_tok_s", ""), genie.get("init_ms", ""),
            genie.get("generated_tokens", ""), host.get("first_token_ms", ""),
            host.get("total_ms", ""), host.get("overhead_ms", ""),
            _hottest(t.get("thermal_before")), _hottest(t.get("thermal_after")),
            (t.get("cooldown") or {}).get("waited_s", ""),
        ])


def _hottest(reading: dict | None) -> Any:
    if not reading:
        return ""
    value = reading.get("hottest_c")
    return "" if value is None else value


REPORT_FORMATS = ("table", "json", "jsonl", "md", "csv")


def parse_format(text: str, allowed: tuple[str, ...] = REPORT_FORMATS) -> str:

    fmt = text.strip().lower()
    fmt = {"markdown": "md"}.get(fmt, fmt)
    if fmt not in allowed:
        raise UsageError(f"-o {text!r} is not an output format", hint=f"Use {', '.join(allowed)}.")
    return fmt


def write_report(
    run: Any, fmt: str, out: IO[str], *, chart: bool = True, width: int | None = None
) -> Any:
    """Render a ``StoredRun`` in ``fmt``; table mode adds the roofline line and, unless
    ``chart`` is False, the terminal chart. Returns the ``BenchReport``."""

    report = build_report(run)
    if fmt == "table":
        from rich.console import Console
        from rich.markup import escape


        write_table(report, out, width=width)
        Console(file=out, width=width or 160, highlight=False, soft_wrap=False).print(
            escape(roofline(report).line())
        )
        if chart:

            out.write("\n")
            write_chart(report, out, console_width=width)
    elif fmt == "json":
        write_json(report, out)
    elif fmt == "jsonl":
        write_jsonl(report, out)
    elif fmt == "md":
        write_markdown(report, out, created_at=run.created_at)
    elif fmt == "csv":
        write_csv(report, out)
    else:  # pragma: no cover - parse_format guards this
        raise ValueError(fmt)
    return report
