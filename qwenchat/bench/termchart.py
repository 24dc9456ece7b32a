"""A compact chart for the terminal: TTFT measured vs published per length as Unicode bars
(eighth-block resolution), shown under the bench table."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from qwenchat.bench.report import BenchReport

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, scale: float, width: int) -> str:
    """``value`` as a bar of full blocks and one eighth-block, ``scale`` filling ``width``."""
    if scale <= 0 or value <= 0:
        return ""
    eighths = round(min(value / scale, 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def chart_lines(report: BenchReport, width: int = 40) -> list[tuple[str, str, str]]:
    """(label, bar, figure) rows: per length, measured then published TTFT."""
    rows: list[tuple[str, str, str]] = []
    values = []
    for r in report.lengths:
        if r.ttft_ms is not None:
            values.append(r.ttft_ms.median)
        if r.ttft_vs_published is not None:
            values.append(r.ttft_vs_published.expected)
    scale = max(values, default=0.0)
    for r in report.lengths:
        measured = r.ttft_ms.median if r.ttft_ms else None
        rows.append((
            f"{r.length:>6} measured ",
            "" if measured is None else bar(measured, scale, width),
            "no successful trial" if measured is None else f"{measured:,.1f} ms",
        ))
        if r.ttft_vs_published is not None:
            c = r.ttft_vs_published
            note = (
                "median within ±15%" if c.standing == "within"
                else f"median {c.standing} by {abs(c.margin_pct):.0f}%"
            )
            rows.append((
                "       published",
                bar(c.expected, scale, width),
                f"{c.expected:,.1f} ms ({note})",
            ))
    return rows


def write_chart(
    report: BenchReport, out: IO[str], *, width: int = 40, console_width: int | None = None
) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=out, width=console_width or 160, highlight=False, soft_wrap=False)
    sim = " [bold yellow]SIMULATED[/]" if report.simulated else ""
    against = " vs published" if report.published is not None else "; no published figure"
    console.print(f"[bold]TTFT by prompt length[/] (ms, Genie profiler{against}){sim}")
    for label, blocks, figure in chart_lines(report, width):
        colour = "cyan" if "measured" in label else "grey50"
        console.print(f"{escape(label)} [{colour}]{blocks:<{width}}[/] {escape(figure)}")
