"""The bench report: per length, Genie's figures summarized and set against Qualcomm's
published figures for the run's model; as a Rich table, JSON (every raw sample and the whole
context) or JSON lines.

Every figure names its source: ``genie`` (the --profile JSON Genie's profiler wrote on the
phone) or ``host`` (the host's clock around the adb shell command).

The TTFT verdict uses the MEDIAN of the measured trials: Qualcomm's harness reports the median
of its trials. The published lower bound is its figure for the shortest prompt, a best case,
so our fastest trial (the min) is set against it too, for reference and never as the verdict;
every output format says which statistic the verdict used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from qwenchat.bench.records import RunContext, RunPlan, RunRecord, RunStatus, TrialRecord
from qwenchat.bench.stats import Summary, summarize
from qwenchat.published import PublishedFigures, harness, published_chips, published_for

TOLERANCE = 0.15  # within ±15% of the published figure counts as matching it
VERDICT_STATISTIC = "median"
NO_FIGURE = "no published figure"
# What our side of every verdict is (Genie's --profile JSON, see genie/profile.py).
GENIE_MEASURED = (
    "Genie's end-to-end profile on this phone (its GenieDialog_query event, from "
    "genie-t2t-run --profile or genie-app's profile save): TTFT is "
    "GenieDialog_query's time to the first token (tokenizer, every prompt-processor pass, "
    "sampler), the rate is the token generation rate after it, dialog overhead included"
)


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
    statistic: str  # which of our figures is compared: "median" or "min"
    expected: float
    measured: float
    ratio_pct: float  # measured / expected x 100
    margin_pct: float
    standing: str  # within / faster / slower, whether or not it is the verdict
    verdict: str | None  # = standing for the verdict's statistic; None: for reference only
    label: str = ""


def compare(
    statistic: str, expected: float, measured: float, *, higher_is_faster: bool,
    is_verdict: bool, label: str = "",
) -> Comparison:
    ratio = measured / expected
    standing = verdict(ratio, higher_is_faster=higher_is_faster)
    return Comparison(
        statistic, expected, measured, ratio * 100,
        margin_pct(ratio, higher_is_faster=higher_is_faster),
        standing, standing if is_verdict else None, label,
    )


@dataclass
class LengthReport:
    length: int
    requested: int
    clamped: bool
    padded_tokens: int | None  # the NPU prefills whole passes (None: pass size unknown)
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
    ttft_vs_published: Comparison | None  # our median: the verdict
    ttft_min_vs_published: Comparison | None  # our fastest trial, for reference
    decode_vs_published: Comparison | None  # our median: the verdict
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
    status: RunStatus
    model: str
    simulated: bool
    created_at: float | None
    context: RunContext
    plan: RunPlan
    published: PublishedFigures | None
    lengths: list[LengthReport]
    failures: list[Failure]
    trials: list[TrialRecord]
    notes: list[str]
    note: str | None = None  # why the run ended early
    verdict_statistic: str = VERDICT_STATISTIC
    # The model's figures on other chips: never a verdict, a labelled reference at most.
    cross_chip: list[PublishedFigures] = field(default_factory=list)

    @property
    def failed_count(self) -> int:
        return len(self.failures)

    @property
    def published_missing(self) -> str | None:
        """The line a report prints instead of verdicts when there is no published figure."""
        if self.published is not None:
            return None
        if self.cross_chip:
            soc = self.context.device.soc or "an unknown chip"
            name = self.context.device.soc_name
            chip = f"{name} ({soc})" if name else soc
            listed = ", ".join(f"{f.soc}" for f in self.cross_chip)
            return (f"{NO_FIGURE} for {self.model} on {chip} (Qualcomm publishes it for "
                    f"{listed} only): no verdict")
        return f"{NO_FIGURE} for {self.model}: no verdict"

    @property
    def measured_definitions(self) -> dict[str, str] | None:
        """What each side of a verdict measured; None when there is no verdict."""
        if self.published is None:
            return None
        return {"measured": GENIE_MEASURED, "published": self.published.measured_as}

    def as_json(self) -> dict[str, Any]:
        """The report at its file edge: every sample, the whole context, the plan."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "model": self.model,
            "simulated": self.simulated,
            "engine": self.context.engine,
            "engine_label": self.context.engine_label,
            "created_at": self.created_at,
            "note": self.note,
            "context": {**self.context.to_json(), "seed": self.plan.seed},
            "plan": self.plan.to_json(),
            "published": None if self.published is None else self.published.as_json(),
            "published_missing": self.published_missing,
            "measured_definitions": self.measured_definitions,
            "published_cross_chip_reference": [f.as_json() for f in self.cross_chip],
            "verdict_statistic": self.verdict_statistic,
            "lengths": [asdict(r) for r in self.lengths],
            "failures": [asdict(f) for f in self.failures],
            "trials": [t.to_json() for t in self.trials],
            "notes": self.notes,
        }


def _values(trials: list[TrialRecord], pick: Callable[[TrialRecord], object]) -> list[float]:
    out = []
    for t in trials:
        value = pick(t)
        if isinstance(value, int | float):
            out.append(float(value))
    return out


def _genie(name: str) -> Callable[[TrialRecord], object]:
    return lambda t: None if t.genie is None else getattr(t.genie, name)


def _host(name: str) -> Callable[[TrialRecord], object]:
    return lambda t: None if t.host is None else getattr(t.host, name)


def _ttft_label(pub: PublishedFigures, n: int, largest: int) -> str:
    if pub.ttft_model == "one-pass":
        return (f"published {pub.ttft_min_ms:.10g} ms for any prompt up to {pub.chunk_size} "
                f"tokens (one {pub.chunk_size}-token pass)")
    label = (f"published model at {n} tokens: ceil({n}/{pub.chunk_size}) x "
             f"{pub.ttft_min_ms:.10g} ms")
    if n == largest and n > pub.chunk_size:
        label += (
            f" (the published {pub.ttft_max_ms:.10g} ms for {pub.context_length} tokens is "
            f"extrapolated, {pub.context_length // pub.chunk_size} x the lower bound, "
            "not measured)"
        )
    return label


def build_report(run: RunRecord) -> BenchReport:
    key = run.context.published_key
    pub = published_for(key, run.context.device.soc)
    cross_chip = [] if pub is not None else published_chips(key)
    measured = run.measured
    lengths = {p.tokens: p.requested for p in run.plan.lengths}
    reports: list[LengthReport] = []
    largest = max(lengths) if lengths else 0
    for n in sorted(lengths):
        here = [t for t in measured if t.length == n]
        ok = [t for t in here if t.ok]
        ttft = summarize(_values(ok, _genie("ttft_ms")))
        decode = summarize(_values(ok, _genie("decode_tok_s")))
        padded = pub.padded_tokens(n) if pub is not None else None
        ttft_cmp = ttft_min = decode_cmp = None
        if pub is not None and ttft is not None and n <= pub.context_length:
            expected = pub.expected_ttft_ms(n)
            label = _ttft_label(pub, n, largest)
            ttft_cmp = compare("median", expected, ttft.median, higher_is_faster=False,
                               is_verdict=True, label=label)
            ttft_min = compare("min", expected, ttft.min, higher_is_faster=False,
                               is_verdict=False, label=label)
        if pub is not None and decode is not None:
            decode_cmp = compare("median", pub.decode_tok_s, decode.median,
                                 higher_is_faster=True, is_verdict=True,
                                 label=f"published {pub.decode_tok_s:.10g} tok/s")
        stops: dict[str, int] = {}
        for t in here:
            stops[t.stop_reason.value] = stops.get(t.stop_reason.value, 0) + 1
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
                prompt_tok_s=summarize(_values(ok, _genie("prompt_tok_s"))),
                padded_prompt_tok_s=(
                    None if ttft is None or padded is None else padded / (ttft.median / 1000.0)
                ),
                init_ms=summarize(_values(ok, _genie("init_ms"))),
                host_first_token_ms=summarize(_values(ok, _host("first_token_ms"))),
                host_total_ms=summarize(_values(ok, _host("total_ms"))),
                host_overhead_ms=summarize(_values(ok, _host("overhead_ms"))),
                generated_tokens=summarize(_values(ok, _genie("generated_tokens"))),
                stop_reasons=stops,
                ttft_vs_published=ttft_cmp,
                ttft_min_vs_published=ttft_min,
                decode_vs_published=decode_cmp,
                samples={
                    "ttft_ms": _values(ok, _genie("ttft_ms")),
                    "decode_tok_s": _values(ok, _genie("decode_tok_s")),
                    "host_first_token_ms": _values(ok, _host("first_token_ms")),
                },
            )
        )
    failures = [
        Failure(t.length, t.rep, t.warmup, t.error or t.stop_reason.label, t.stop_reason.value)
        for t in run.trials
        if not t.ok
    ]
    notes: list[str] = []
    if pub is None and cross_chip:
        notes.append(
            f"No published figure for {run.model} on {run.context.device.soc or 'this chip'}: "
            "the figures are shown without a verdict (a context binary's speed is the chip's)."
        )
        notes += [
            f"Cross-chip reference only, not a verdict: {f.model} on {f.device} ({f.soc}): "
            f"TTFT {f.ttft_min_ms:.10g}-{f.ttft_max_ms:.10g} ms, {f.decode_tok_s:.10g} tok/s "
            f"({f.source})."
            for f in cross_chip
        ]
    elif pub is None:
        notes.append(
            f"No published figure for {run.model} (published_figures.json has no entry"
            + (f" {run.context.published_key!r}" if run.context.published_key else "")
            + "): the figures are shown without a verdict."
        )
    else:
        notes += [
            f"Measured here: {GENIE_MEASURED}.",
            f"Published: {pub.measured_as}",
            pub.published_upper_is_extrapolated,
            (f"The NPU prefills whole {pub.chunk_size}-token passes: padded tokens = "
             f"ceil(n/{pub.chunk_size}) x {pub.chunk_size}; prompt tok/s is over real tokens."),
            ("Verdicts use the median of the measured trials (Qualcomm's harness reports the "
             "median of its trials): within ±15% of the published figure, else faster or "
             "slower. The published lower bound is the shortest prompt's figure, a best case: "
             "our fastest trial (min) is set against it too, for reference, never as the "
             "verdict."),
        ]
        if any(p.length > pub.context_length for p in reports):
            notes.append(
                f"Lengths beyond the published {pub.context_length}-token context have no "
                "published TTFT."
            )
    if run.plan.protocol == "qualcomm":
        notes.append(
            "Protocol qualcomm: 1 warm-up, 25 trials, no cool-down, 128 generated tokens "
            "(as AI Hub measured)."
        )
    if any(p.clamped for p in reports):
        notes.append("Clamped lengths leave room for the generated tokens in the context.")
    return BenchReport(
        run_id=run.id,
        status=run.status,
        model=run.model,
        simulated=run.simulated,
        created_at=run.created_at,
        context=run.context,
        plan=run.plan,
        published=pub,
        lengths=reports,
        failures=failures,
        trials=list(run.trials),
        notes=notes,
        note=run.note,
        cross_chip=cross_chip,
    )


# ----- rendering
def write_json(report: BenchReport, out: IO[str]) -> None:
    out.write(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(report: BenchReport, out: IO[str]) -> None:
    """One line per trial (raw samples), then one per length (summaries)."""
    head = {"run_id": report.run_id, "model": report.model, "simulated": report.simulated,
            "engine": report.context.engine, "verdict_statistic": report.verdict_statistic}
    for trial in report.trials:
        row = {"type": "trial", **head, **trial.to_json()}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
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


def standing(c: Comparison) -> str:
    """``within ±15%`` / ``faster by 12.3%`` / ``slower by 4.0%`` of one comparison."""
    if c.standing == "within":
        return "within ±15%"
    return f"{c.standing} by {abs(c.margin_pct):.1f}%"


def _cmp(c: Comparison | None, missing: str = "-") -> str:
    if c is None:
        return missing
    return f"{standing(c)}\n[dim]{c.ratio_pct:.1f}% of published[/]"


def write_table(report: BenchReport, out: IO[str], *, width: int | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=width or 160, highlight=False, soft_wrap=False)
    ctx = report.context
    dev = ctx.device
    pub = report.published
    missing = NO_FIGURE if pub is None else "-"
    if report.simulated:
        console.print(
            "[bold reverse yellow] SIMULATED [/] [bold yellow]these figures come from "
            "qwenchat's emulated phone, not from a Snapdragon NPU[/]"
        )
    console.print(
        f"bench run [bold]{report.run_id}[/] ({report.status.value}) · model "
        f"[bold]{escape(report.model)}[/] · {escape(dev.model or '?')} {escape(dev.serial)} · "
        f"SoC {escape(dev.soc or '?')} · Android {escape(dev.android_version or '?')} · "
        f"libGenie {escape(ctx.libgenie_version or '?')} · seed {report.plan.seed} · "
        f"gen-len {report.plan.gen_len} · {report.plan.repetitions} reps + "
        f"{report.plan.warmup} warm-up"
    )
    if ctx.engine != "process":  # the default (a fresh process per trial) goes unsaid here
        console.print(f"engine: [bold]{escape(ctx.engine_label)}[/]")
    if report.note:
        console.print(f"[yellow]run ended early: {escape(report.note)}[/]")
    table = Table(show_lines=True, title_justify="left")
    table.add_column("prompt tok", justify="right")
    table.add_column("TTFT ms median\n[dim]genie profiler[/]", justify="right")
    table.add_column("TTFT spread\n[dim]±sd min–max[/]", justify="right")
    formula = escape(pub.ttft_formula) if pub is not None else NO_FIGURE
    table.add_column(
        f"TTFT median vs published\n[dim]the verdict; {formula}[/]", justify="right"
    )
    table.add_column("TTFT min vs published\n[dim]best trial, reference only[/]",
                     justify="right")
    table.add_column("decode tok/s\n[dim]genie profiler[/]", justify="right")
    table.add_column(
        f"decode median vs {pub.decode_tok_s:.10g} tok/s" if pub is not None
        else "decode vs published", justify="right",
    )
    table.add_column("prompt tok/s\n[dim]real / padded[/]", justify="right")
    table.add_column("first token ms\n[dim]host clock, incl. init[/]", justify="right")
    table.add_column("ok/failed", justify="right")
    for r in report.lengths:
        label = str(r.length) + (f"\n[dim](asked {r.requested})[/]" if r.clamped else "")
        dec = r.decode_tok_s
        prompt = "-"
        if r.prompt_tok_s is not None:
            prompt = f"{r.prompt_tok_s.median:,.0f} / {_fmt(r.padded_prompt_tok_s, 0)}"
            if r.padded_tokens is not None:
                prompt += f"\n[dim]padded {r.padded_tokens}[/]"
        median_cmp = _cmp(r.ttft_vs_published, missing)
        if r.ttft_vs_published is not None:
            median_cmp += f"\n[dim]published {r.ttft_vs_published.expected:,.1f}[/]"
        min_cmp = _cmp(r.ttft_min_vs_published, missing)
        if r.ttft_min_vs_published is not None:
            min_cmp = f"min {r.ttft_min_vs_published.measured:,.1f}\n" + min_cmp
        table.add_row(
            label,
            _fmt(r.ttft_ms.median if r.ttft_ms else None),
            _spread(r.ttft_ms),
            median_cmp,
            min_cmp,
            _fmt(dec.median if dec else None, 2)
            + (f"\n[dim]±{dec.stddev:.2f} {dec.min:.2f}–{dec.max:.2f}[/]" if dec else ""),
            _cmp(r.decode_vs_published, missing),
            prompt,
            _fmt(r.host_first_token_ms.median if r.host_first_token_ms else None),
            f"{r.trials_ok}/{r.trials_failed}",
        )
    console.print(table)
    if pub is not None:
        console.print(
            f"Published: {escape(pub.model)} on {escape(pub.device)} ({escape(pub.soc)}; "
            f"{escape(pub.source)}, "
            f"{escape(pub.date)}): TTFT {pub.ttft_min_ms:.10g}–{pub.ttft_max_ms:.10g} ms, "
            f"{pub.decode_tok_s:.10g} tok/s. Verdict statistic: {report.verdict_statistic}."
        )
        for length in report.lengths:
            if length.ttft_vs_published and "extrapolated" in length.ttft_vs_published.label:
                console.print(f"[dim]{length.length} tokens compared with the "
                              f"{escape(length.ttft_vs_published.label)}[/]")
    else:
        console.print(f"[yellow]{escape(report.published_missing or '')}.[/]")
    waits = [t.cooldown for t in report.trials if t.cooldown is not None]
    if waits:
        total = sum(w.waited_s for w in waits)
        bounded = sum(1 for w in waits if not w.reached)
        console.print(
            f"Cool-down (host clock): {total:.1f} s waited before {len(waits)} trial(s)"
            + (f", {bounded} stopped at the wait bound while still warm" if bounded else "")
            + "."
        )
    for note in report.notes:
        console.print(f"[dim]· {escape(note)}[/]")
    if pub is not None and harness():
        console.print(f"[dim]· {escape(harness())}[/]")
    if report.failures:
        console.print(f"[bold red]{len(report.failures)} failed trial(s)[/]:")
        for f in report.failures:
            kind = "warm-up" if f.warmup else f"rep {f.rep + 1}"
            console.print(
                f"  [red]{f.length} tokens, {kind} ({f.stop_reason}):[/] {escape(f.reason)}"
            )
