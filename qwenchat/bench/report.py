"""The bench report: per length, Genie's figures summarized and set against Qualcomm's
published Qwen2-7B-Instruct figures; as a Rich table, JSON (every raw sample and the whole
context) or JSON lines.

Every figure names its source: ``genie`` (the --profile JSON Genie's profiler wrote on the
phone) or ``host`` (the host's clock around the adb shell command).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from qwenchat.bench.stats import Summary, summarize
from qwenchat.bench.storage import StoredRun
from qwenchat.published import published_figures

TOLERANCE = 0.15  # within ±15% of the published figure counts as matching it


def verdict(ratio: float, *, higher_is_faster: bool) -> str:
    """``within`` / ``faster`` / ``slower`` for measured/expected."""
    if abs(ratio - 1.0) <= TOLERANCE:
        return "within"
    faster = ratio > 1.0 if higher_is_faster else ratio < 1.0
    return "faster" if faster else "slower"


def margin_pct(ratio: float, *, higher_is_faster: bool) -> float:
    """How much faster (+) or slower (-) than published, in percent of the published figure.

    TTFT: 1 - measured/expected (100 ms vs 170.593 ms is 41.4% faster); decode: ratio - 1.
    """
    return (ratio - 1.0) * 100.0 if higher_is_faster else (1.0 - ratio) * 100.0


@dataclass
class Comparison:
    expected: float
    measured: float
    ratio_pct: float  # measured / expected x 100
    verdict: str
    margin_pct: float
    label: str = ""


@dataclass
class LengthReport:
    length: int
    requested: int
    clamped: bool
    padded_tokens: int  # the NPU prefills whole 128-token chunks
    trials_ok: int
    trials_failed: int
    ttft_ms: Summary | None  # genie
    decode_tok_s: Summary | None  # genie
    prompt_tok_s: Summary | None  # genie: real prompt tokens / TTFT
    padded_prompt_tok_s: float | None  # padded tokens / median TTFT
    init_ms: Summary | None  # genie
    host_first_token_ms: Summary | None  # host: process start -> first token (init included)
    host_total_ms: Summary | None  # host
    host_overhead_ms: Summary | None  # host total - genie create/query/free durations
    generated_tokens: Summary | None
    stop_reasons: dict[str, int]
    ttft_vs_published: Comparison | None
    decode_vs_published: Comparison | None
    samples: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Failure:
    length: int
    rep: int
    warmup: bool
    reason: str
    stop_reason: str


@dataclass
class BenchReport:
    run_id: str
    status: str
    simulated: bool
    context: dict[str, Any]
    plan: dict[str, Any]
    published: dict[str, Any]
    lengths: list[LengthReport]
    failures: list[Failure]
    trials: list[dict[str, Any]]
    notes: list[str]

    @property
    def failed_count(self) -> int:
        return len(self.failures)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _values(trials: list[Any], path: tuple[str, str]) -> list[float]:
    out = []
    for t in trials:
        part = (t.result or {}).get(path[0]) or {}
        value = part.get(path[1])
        if isinstance(value, int | float):
            out.append(float(value))
    return out


def build_report(run: StoredRun, model: str = "qwen2-7b-instruct") -> BenchReport:

    pub = published_figures(model)
    measured = [t for t in run.trials if not t.warmup]
    lengths: dict[int, int] = {}
    for p in run.plan.get("lengths", []):
        lengths[p["tokens"]] = p["requested"]
    reports: list[LengthReport] = []
    largest = max(lengths) if lengths else 0
    for n in sorted(lengths):
        here = [t for t in measured if t.length == n]
        ok = [t for t in here if t.ok]
        ttft = summarize(_values(ok, ("genie", "ttft_ms")))
        decode = summarize(_values(ok, ("genie", "decode_tok_s")))
        padded = math.ceil(n / pub.chunk_size) * pub.chunk_size
        ttft_cmp = decode_cmp = None
        if ttft is not None and n <= pub.context_length:
            expected = pub.expected_ttft_ms(n)
            ratio = ttft.median / expected
            label = f"published model at {n} tokens: ceil({n}/128) x {pub.ttft_min_ms:g} ms"
            if n == largest and n > pub.chunk_size:
                label += (
                    f" (the published {pub.ttft_max_ms:g} ms for {pub.context_length} tokens is "
                    f"extrapolated, 32 x the lower bound, not measured)"
                )
            ttft_cmp = Comparison(
                expected, ttft.median, ratio * 100, verdict(ratio, higher_is_faster=False),
                margin_pct(ratio, higher_is_faster=False), label,
            )
        if decode is not None:
            ratio = decode.median / pub.decode_tok_s
            decode_cmp = Comparison(
                pub.decode_tok_s, decode.median, ratio * 100,
                verdict(ratio, higher_is_faster=True), margin_pct(ratio, higher_is_faster=True),
                f"published {pub.decode_tok_s:g} tok/s",
            )
        stops: dict[str, int] = {}
        for t in here:
            stops[t.stop_reason] = stops.get(t.stop_reason, 0) + 1
        reports.append(
            LengthReport(
                length=n,
                requested=lengths[n],
                clamped=lengths[n] != n,
                padded_tokens=padded,
                trials_ok=len(ok),
                trials_failed=len(here) - len(ok),
                ttft_ms=ttft,
                decode_tok_s=decode,
                prompt_tok_s=summarize(_values(ok, ("genie", "prompt_tok_s"))),
                padded_prompt_tok_s=None if ttft is None else padded / (ttft.median / 1000.0),
                init_ms=summarize(_values(ok, ("genie", "init_ms"))),
                host_first_token_ms=summarize(_values(ok, ("host", "first_token_ms"))),
                host_total_ms=summarize(_values(ok, ("host", "total_ms"))),
                host_overhead_ms=summarize(_values(ok, ("host", "overhead_ms"))),
                generated_tokens=summarize(_values(ok, ("genie", "generated_tokens"))),
                stop_reasons=stops,
                ttft_vs_published=ttft_cmp,
                decode_vs_published=decode_cmp,
                samples={
                    "ttft_ms": _values(ok, ("genie", "ttft_ms")),
                    "decode_tok_s": _values(ok, ("genie", "decode_tok_s")),
                    "host_first_token_ms": _values(ok, ("host", "first_token_ms")),
                },
            )
        )
    failures = [
        Failure(t.length, t.rep, t.warmup, t.error or t.stop_reason, t.stop_reason)
        for t in run.trials
        if not t.ok
    ]
    notes = [
        pub.published_upper_is_extrapolated,
        f"The NPU prefills whole {pub.chunk_size}-token chunks: padded tokens = "
        f"ceil(n/{pub.chunk_size}) x {pub.chunk_size}; prompt tok/s is over real tokens.",
        "Verdicts: within ±15% of the published figure, else faster or slower.",
    ]
    if run.plan.get("protocol") == "qualcomm":
        notes.append(
            "Protocol qualcomm: 1 warm-up, 25 trials, no cool-down, 128 generated tokens "
            "(as AI Hub measured)."
        )
    if any(p.clamped for p in reports):
        notes.append("Clamped lengths leave room for the generated tokens in the context.")
    trials = [
        {
            "length": t.length, "requested": t.requested, "rep": t.rep, "warmup": t.warmup,
            "ok": t.ok, "stop_reason": t.stop_reason, "error": t.error, "result": t.result,
            "thermal_before": t.thermal_before, "thermal_after": t.thermal_after,
            "power": t.power, "cooldown": t.cooldown,
        }
        for t in run.trials
    ]
    published = {
        "model": pub.model, "device": pub.device, "soc": pub.soc, "precision": pub.precision,
        "context_length": pub.context_length, "ttft_min_ms": pub.ttft_min_ms,
        "ttft_max_ms": pub.ttft_max_ms, "decode_tok_s": pub.decode_tok_s,
        "source": pub.source, "date": pub.date, "range_definition": pub.range_definition,
        "upper_bound_measured": pub.upper_bound_measured,
    }
    return BenchReport(
        run_id=run.id,
        status=run.status,
        simulated=bool(run.context.get("simulated")),
        context={**run.context, "seed": run.plan.get("seed")},
        plan=run.plan,
        published=published,
        lengths=reports,
        failures=failures,
        trials=trials,
        notes=notes,
    )


# ----- rendering
def write_json(report: BenchReport, out: IO[str]) -> None:
    out.write(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(report: BenchReport, out: IO[str]) -> None:
    """One line per trial (raw samples), then one per length (summaries)."""
    head = {"run_id": report.run_id, "simulated": report.simulated}
    for trial in report.trials:
        out.write(json.dumps({"type": "trial", **head, **trial}, ensure_ascii=False) + "\n")
    for length in report.lengths:
        row = {"type": "length", **head, **asdict(length)}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _spread(s: Summary | None, digits: int = 1) -> str:
    if s is None:
        return "-"
    return (
        f"±{s.stddev:.{digits}f}  {s.min:.{digits}f}–{s.max:.{digits}f}\n"
        f"p10 {s.p10:.{digits}f} p90 {s.p90:.{digits}f}"
    )


def _cmp(c: Comparison | None) -> str:
    if c is None:
        return "-"
    head = "within ±15%" if c.verdict == "within" else f"{c.verdict} by {abs(c.margin_pct):.1f}%"
    return f"{head}\n[dim]{c.ratio_pct:.1f}% of published[/]"


def write_table(report: BenchReport, out: IO[str], *, width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=width or 160, highlight=False, soft_wrap=False)
    ctx = report.context
    dev = ctx.get("device") or {}
    if report.simulated:
        console.print(
            "[bold reverse yellow] SIMULATED [/] [bold yellow]these figures come from "
            "qwenchat's emulated phone, not from a Snapdragon NPU[/]"
        )
    console.print(
        f"bench run [bold]{report.run_id}[/] ({report.status}) · {dev.get('model', '?')} "
        f"{dev.get('serial', '')} · SoC {dev.get('soc', '?')} · Android "
        f"{dev.get('android_version', '?')} · libGenie {ctx.get('libgenie_version') or '?'} · "
        f"seed {ctx.get('seed')} · gen-len {report.plan.get('gen_len')} · "
        f"{report.plan.get('repetitions')} reps + {report.plan.get('warmup')} warm-up"
    )
    table = Table(show_lines=True, title_justify="left")
    table.add_column("prompt tok", justify="right")
    table.add_column("TTFT ms median\n[dim]genie profiler[/]", justify="right")
    table.add_column("TTFT spread\n[dim]±sd min–max[/]", justify="right")
    table.add_column(
        f"vs published TTFT\n[dim]ceil(n/128) x {report.published['ttft_min_ms']:g}[/]",
        justify="right",
    )
    table.add_column("decode tok/s\n[dim]genie profiler[/]", justify="right")
    table.add_column(f"vs {report.published['decode_tok_s']:g} tok/s", justify="right")
    table.add_column("prompt tok/s\n[dim]real / padded[/]", justify="right")
    table.add_column("first token ms\n[dim]host clock, incl. init[/]", justify="right")
    table.add_column("ok/failed", justify="right")
    for r in report.lengths:
        label = str(r.length) + (f"\n[dim](asked {r.requested})[/]" if r.clamped else "")
        dec = r.decode_tok_s
        prompt = "-"
        if r.prompt_tok_s is not None:
            prompt = f"{r.prompt_tok_s.median:,.0f} / {_fmt(r.padded_prompt_tok_s, 0)}"
            prompt += f"\n[dim]padded {r.padded_tokens}[/]"
        table.add_row(
            label,
            _fmt(r.ttft_ms.median if r.ttft_ms else None),
            _spread(r.ttft_ms),
            _cmp(r.ttft_vs_published)
            + (f"\n[dim]published {r.ttft_vs_published.expected:,.1f}[/]"
               if r.ttft_vs_published else ""),
            _fmt(dec.median if dec else None, 2)
            + (f"\n[dim]±{dec.stddev:.2f} {dec.min:.2f}–{dec.max:.2f}[/]" if dec else ""),
            _cmp(r.decode_vs_published),
            prompt,
            _fmt(r.host_first_token_ms.median if r.host_first_token_ms else None),
            f"{r.trials_ok}/{r.trials_failed}",
        )
    console.print(table)
    pub = report.published
    console.print(
        f"Published: {pub['model']} on {pub['device']} ({pub['source']}, {pub['date']}): "
        f"TTFT {pub['ttft_min_ms']:g}–{pub['ttft_max_ms']:g} ms, {pub['decode_tok_s']:g} tok/s."
    )
    for length in report.lengths:
        if length.ttft_vs_published and "extrapolated" in length.ttft_vs_published.label:
            console.print(f"[dim]{length.length} tokens compared with the "
                          f"{length.ttft_vs_published.label}[/]")
    waits = [t["cooldown"] for t in report.trials if t.get("cooldown")]
    if waits:
        total = sum(w.get("waited_s") or 0.0 for w in waits)
        bounded = sum(1 for w in waits if not w.get("reached", True))
        console.print(
            f"Cool-down (host clock): {total:.1f} s waited before {len(waits)} trial(s)"
            + (f", {bounded} stopped at the wait bound while still warm" if bounded else "")
            + "."
        )
    for note in report.notes:
        console.print(f"[dim]· {note}[/]")
    if report.failures:
        console.print(f"[bold red]{len(report.failures)} failed trial(s)[/]:")
        for f in report.failures:
            kind = "warm-up" if f.warmup else f"rep {f.rep + 1}"
            console.print(f"  [red]{f.length} tokens, {kind}:[/] {f.reason}")
