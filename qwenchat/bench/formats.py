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

from qwenchat.bench.records import RunRecord
from qwenchat.bench.report import (
    NO_FIGURE,
    BenchReport,
    Comparison,
    build_report,
    standing,
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
    """Model, device, SoC and date in one line (titles of tables, charts and plots)."""
    dev = report.context.device
    sim = " · SIMULATED" if report.simulated else ""
    when = run_date(created_at if created_at is not None else report.created_at)
    # Only the warm-dialog engine is named here: the default (fresh process) is what the
    # published figures measured; the full label is in every report's body.
    warm = " · session (warm dialog)" if report.context.engine == "session" else ""
    return (
        f"{report.model} · {dev.model or '?'} · SoC {dev.soc or '?'} · {when}"
        f" · run {report.run_id}{warm}{sim}"
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _range(s: Summary | None, digits: int = 1) -> str:
    return "-" if s is None else f"{s.p10:,.{digits}f}–{s.p90:,.{digits}f}"


def _verdict(c: Comparison | None, missing: str = "-") -> str:
    if c is None:
        return missing
    text = standing(c)
    if c.verdict is not None and c.verdict != "within":
        text = f"**{text}**"
    return f"{text} ({c.ratio_pct:.1f}%)"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(report: BenchReport, out: IO[str], *, created_at: float | None = None) -> None:

    ctx, pub, plan = report.context, report.published, report.plan
    dev = ctx.device
    created_at = created_at if created_at is not None else report.created_at
    missing = NO_FIGURE if pub is None else "-"
    title = f"### qwenchat bench: {_md_escape(headline(report, created_at))}"
    lines = [title, ""]
    if report.simulated:
        lines += [
            "> **SIMULATED**: these figures come from qwenchat's emulated phone, "
            "not from a Snapdragon NPU.",
            "",
        ]
    lines += [
        f"- Model: {_md_escape(report.model)}",
        f"- Device: {_md_escape(dev.model or '?')} `{dev.serial}`, SoC "
        f"{dev.soc or '?'}, Android {dev.android_version or '?'}, libGenie "
        f"{ctx.libgenie_version or '?'}",
        f"- Run `{report.run_id}` ({report.status.value}), {run_date(created_at)}: seed "
        f"{plan.seed}, gen-len {plan.gen_len}, {plan.repetitions} reps + "
        f"{plan.warmup} warm-up, protocol {plan.protocol}",
    ]
    if ctx.engine != "process":  # the default (a fresh process per trial) goes unsaid here
        lines.append(f"- Engine: {_md_escape(ctx.engine_label)}")
    if report.note:
        lines.append(f"- Ended early: {_md_escape(report.note)}")
    decode_head = (f"decode median vs {pub.decode_tok_s:.10g} tok/s (verdict)" if pub is not None
                   else "decode vs published")
    lines += [
        f"- Verdict statistic: **{report.verdict_statistic}** of the measured trials "
        "(the min is shown for reference only)",
        "",
        "| prompt tok | TTFT ms (genie, median) | TTFT ms (genie, min) | TTFT p10–p90 "
        "| published TTFT ms | TTFT median vs published (verdict) | TTFT min vs published "
        f"| decode tok/s (genie, median) | decode p10–p90 | {decode_head} "
        "| first token ms (host, incl. init) | ok/failed |",
        "|---:|---:|---:|---:|---:|---|---|---:|---:|---|---:|---:|",
    ]
    for r in report.lengths:
        label = str(r.length) + (f" (asked {r.requested})" if r.clamped else "")
        lines.append(
            "| " + " | ".join([
                label,
                _num(r.ttft_ms.median if r.ttft_ms else None),
                _num(r.ttft_ms.min if r.ttft_ms else None),
                _range(r.ttft_ms),
                _num(r.ttft_vs_published.expected if r.ttft_vs_published else None),
                _verdict(r.ttft_vs_published, missing),
                _verdict(r.ttft_min_vs_published, missing),
                _num(r.decode_tok_s.median if r.decode_tok_s else None, 2),
                _range(r.decode_tok_s, 2),
                _verdict(r.decode_vs_published, missing),
                _num(r.host_first_token_ms.median if r.host_first_token_ms else None),
                f"{r.trials_ok}/{r.trials_failed}",
            ]) + " |"
        )
    lines.append("")
    if pub is not None:
        lines.append(
            f"Published: {pub.model} on {_md_escape(pub.device)} ({pub.soc}; "
            f"{_md_escape(pub.source)}, "
            f"{pub.date}): TTFT {pub.ttft_min_ms:.10g}–{pub.ttft_max_ms:.10g} ms, "
            f"{pub.decode_tok_s:.10g} tok/s. Published TTFT per length = "
            f"{_md_escape(pub.ttft_formula)}."
        )
    else:
        lines.append(f"**{_md_escape(report.published_missing or '')}.**")
    lines += ["", roofline(report).line(), ""]
    lines += [f"- {_md_escape(note)}" for note in report.notes]
    if report.failures:
        lines += ["", f"**{len(report.failures)} failed trial(s):**", ""]
        for f in report.failures:
            kind = "warm-up" if f.warmup else f"rep {f.rep + 1}"
            lines.append(f"- {f.length} tokens, {kind} ({f.stop_reason}): {_md_escape(f.reason)}")
    out.write("\n".join(lines) + "\n")


def _s(s: Summary | None, attr: str) -> Any:
    return "" if s is None else getattr(s, attr)


def _c(c: Comparison | None, attr: str) -> Any:
    if c is None:
        return ""
    value = getattr(c, attr)
    return "" if value is None else value


LENGTH_COLUMNS = [
    "run_id", "model", "simulated", "device", "soc", "length", "requested", "clamped",
    "trials_ok", "trials_failed",
    "genie_ttft_ms_median", "genie_ttft_ms_mean", "genie_ttft_ms_min", "genie_ttft_ms_max",
    "genie_ttft_ms_p10", "genie_ttft_ms_p90", "genie_ttft_ms_stddev",
    "published_ttft_ms", "ttft_verdict_statistic", "ttft_ratio_pct", "ttft_verdict",
    "ttft_margin_pct", "ttft_min_ratio_pct", "ttft_min_standing", "ttft_min_margin_pct",
    "genie_decode_tok_s_median", "genie_decode_tok_s_mean", "genie_decode_tok_s_p10",
    "genie_decode_tok_s_p90", "genie_decode_tok_s_stddev", "published_decode_tok_s",
    "decode_ratio_pct", "decode_verdict", "decode_margin_pct", "genie_prompt_tok_s_median",
    "padded_tokens", "host_first_token_ms_median", "host_overhead_ms_median",
    "published_note", "engine", "measured_as", "published_measured_as",
]


def write_csv(report: BenchReport, out: IO[str]) -> None:
    """One row per prompt length: the summaries and verdicts of the report."""
    dev = report.context.device
    w = csv.writer(out, lineterminator="\n")
    w.writerow(LENGTH_COLUMNS)
    for r in report.lengths:
        t, m, d = r.ttft_vs_published, r.ttft_min_vs_published, r.decode_vs_published
        w.writerow([
            report.run_id, report.model, report.simulated, dev.model, dev.soc,
            r.length, r.requested, r.clamped, r.trials_ok, r.trials_failed,
            _s(r.ttft_ms, "median"), _s(r.ttft_ms, "mean"), _s(r.ttft_ms, "min"),
            _s(r.ttft_ms, "max"), _s(r.ttft_ms, "p10"), _s(r.ttft_ms, "p90"),
            _s(r.ttft_ms, "stddev"),
            _c(t, "expected"), _c(t, "statistic"), _c(t, "ratio_pct"), _c(t, "verdict"),
            _c(t, "margin_pct"), _c(m, "ratio_pct"), _c(m, "standing"), _c(m, "margin_pct"),
            _s(r.decode_tok_s, "median"), _s(r.decode_tok_s, "mean"), _s(r.decode_tok_s, "p10"),
            _s(r.decode_tok_s, "p90"), _s(r.decode_tok_s, "stddev"),
            _c(d, "expected"), _c(d, "ratio_pct"), _c(d, "verdict"), _c(d, "margin_pct"),
            _s(r.prompt_tok_s, "median"), "" if r.padded_tokens is None else r.padded_tokens,
            _s(r.host_first_token_ms, "median"), _s(r.host_overhead_ms, "median"),
            report.published_missing or "", report.context.engine_label,
            *((report.measured_definitions or {}).get(k, "") for k in ("measured", "published")),
        ])


TRIAL_COLUMNS = [
    "run_id", "model", "simulated", "length", "requested", "rep", "warmup", "ok",
    "stop_reason", "error", "genie_ttft_ms", "genie_decode_tok_s", "genie_prompt_tok_s",
    "genie_init_ms", "genie_prompt_tokens", "genie_generated_tokens", "host_first_token_ms",
    "host_total_ms", "host_overhead_ms", "hottest_c_before", "hottest_c_after",
    "cooldown_waited_s", "manifest_hash", "engine",
]


def _opt(value: Any) -> Any:
    return "" if value is None else value


def write_trials_csv(report: BenchReport, out: IO[str]) -> None:
    """One row per trial (warm-ups and failures included): the raw samples."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(TRIAL_COLUMNS)
    for t in report.trials:
        g, h = t.genie, t.host
        w.writerow([
            report.run_id, report.model, report.simulated, t.length, t.requested, t.rep,
            t.warmup, t.ok, t.stop_reason.value, t.error or "",
            _opt(g and g.ttft_ms), _opt(g and g.decode_tok_s), _opt(g and g.prompt_tok_s),
            _opt(g and g.init_ms), _opt(g and g.prompt_tokens), _opt(g and g.generated_tokens),
            _opt(h and h.first_token_ms), _opt(h and h.total_ms), _opt(h and h.overhead_ms),
            _opt(t.thermal_before and t.thermal_before.hottest_c),
            _opt(t.thermal_after and t.thermal_after.hottest_c),
            _opt(t.cooldown and t.cooldown.waited_s), _opt(t.manifest_hash),
            report.context.engine_label,
        ])


REPORT_FORMATS = ("table", "json", "jsonl", "md", "csv")


def parse_format(text: str, allowed: tuple[str, ...] = REPORT_FORMATS) -> str:

    fmt = text.strip().lower()
    fmt = {"markdown": "md"}.get(fmt, fmt)
    if fmt not in allowed:
        raise UsageError(f"-o {text!r} is not an output format", hint=f"Use {', '.join(allowed)}.")
    return fmt


def write_report(
    run: RunRecord, fmt: str, out: IO[str], *, chart: bool = True, width: int | None = None
) -> BenchReport:
    """Render a stored run in ``fmt``; table mode adds the roofline line and, unless
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
