"""The bench plot (PNG or SVG): TTFT against prompt length with the published line, decode
tok/s per length, and the phone's temperature across the run, titled with device, SoC, date
and SIMULATED when it is.

The figure is drawn from a ``PlotData`` (plain lists taken from the ``BenchReport``), so what
is plotted can be checked without reading pixels. Each drawn series carries a ``gid`` that the
SVG keeps as the id of its group. matplotlib is imported only inside the functions (Agg), and
its absence is one clear error with the install hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenchat.bench.formats import headline
from qwenchat.bench.report import BenchReport
from qwenchat.bench.roofline import roofline
from qwenchat.errors import UsageError

PLOT_HINT = "Install the plot extra: pip install 'qwenchat[plot]'"
FORMATS = (".png", ".svg")


@dataclass
class Series:
    gid: str  # the id of the series' group in an SVG
    label: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)


@dataclass
class PlotData:
    title: str
    simulated: bool
    ttft_measured: Series  # median TTFT per length (genie)
    ttft_samples: Series  # every measured TTFT (genie)
    ttft_published: Series  # the model's published TTFT model at each length
    decode_measured: Series  # median decode tok/s per length (genie)
    decode_published: Series  # the published rate at each length
    temperature: Series  # hottest zone after each trial, in run order
    roofline: str = ""


def plot_data(report: BenchReport, *, created_at: float | None = None) -> PlotData:
    """Everything the plot shows, from a ``BenchReport`` (no published lines when the model
    has no published figure)."""

    pub = report.published
    # Both sides name what they measured: Genie end to end here, AI Hub's profile of the
    # parts (NPU time) for the published line.
    ttft = Series("ttft-measured", "measured median (Genie profiler, end to end)")
    samples = Series("ttft-samples", "trials")
    published = Series(
        "ttft-published",
        f"published on {pub.soc}: {pub.ttft_formula} (AI Hub profile of the parts, NPU time)"
        if pub else "no published figure for this chip",
    )
    decode = Series("decode-measured", "measured median (Genie profiler, end to end)")
    decode_pub = Series(
        "decode-published",
        f"published on {pub.soc} {pub.decode_tok_s:.10g} tok/s (AI Hub profile of the "
        "token generator, NPU time)" if pub else "-",
    )
    for r in report.lengths:
        if r.ttft_ms is not None:
            ttft.x.append(r.length)
            ttft.y.append(r.ttft_ms.median)
        for v in r.samples.get("ttft_ms", []):
            samples.x.append(r.length)
            samples.y.append(v)
        if r.ttft_vs_published is not None:
            published.x.append(r.length)
            published.y.append(r.ttft_vs_published.expected)
        if r.decode_tok_s is not None:
            decode.x.append(r.length)
            decode.y.append(r.decode_tok_s.median)
            if pub is not None:
                decode_pub.x.append(r.length)
                decode_pub.y.append(pub.decode_tok_s)
    temp = Series("temperature", "hottest zone after each trial")
    for i, t in enumerate(report.trials, start=1):
        hottest = None if t.thermal_after is None else t.thermal_after.hottest_c
        if hottest is not None:
            temp.x.append(i)
            temp.y.append(hottest)
    return PlotData(
        title=headline(report, created_at), simulated=report.simulated, ttft_measured=ttft,
        ttft_samples=samples, ttft_published=published, decode_measured=decode,
        decode_published=decode_pub, temperature=temp, roofline=roofline(report).line(),
    )


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:

        raise UsageError("--plot needs matplotlib, which is not installed", hint=PLOT_HINT) from exc
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def build_figure(data: PlotData) -> Any:
    """The matplotlib Figure for ``data`` (three panels, one above the other)."""
    plt = _pyplot()
    fig, (ax_t, ax_d, ax_c) = plt.subplots(3, 1, figsize=(9, 10), layout="constrained")
    sim = "SIMULATED: emulated phone, not a Snapdragon NPU" if data.simulated else ""
    fig.suptitle(data.title + (f"\n{sim}" if sim else ""), fontsize=11,
                 color="darkred" if data.simulated else "black")

    def line(ax: Any, s: Series, **kw: Any) -> None:
        if s.x:
            ax.plot(s.x, s.y, gid=s.gid, label=s.label, **kw)

    line(ax_t, data.ttft_published, color="gray", linestyle="--", marker="s", markersize=4)
    line(ax_t, data.ttft_samples, color="tab:blue", linestyle="none", marker=".", alpha=0.4)
    line(ax_t, data.ttft_measured, color="tab:blue", marker="o")
    ax_t.set_xlabel("prompt length (tokens)")
    ax_t.set_ylabel("time to first token (ms)")
    ax_t.set_title("TTFT vs prompt length", fontsize=10)

    line(ax_d, data.decode_published, color="gray", linestyle="--")
    line(ax_d, data.decode_measured, color="tab:green", marker="o")
    ax_d.set_xlabel("prompt length (tokens)")
    ax_d.set_ylabel("decode (tokens/s)")
    ax_d.set_ylim(bottom=0)
    ax_d.set_title("Decode rate", fontsize=10)

    line(ax_c, data.temperature, color="tab:red", marker=".")
    ax_c.xaxis.get_major_locator().set_params(integer=True)  # trials are whole numbers
    ax_c.set_xlabel("trial (run order, warm-ups included)")
    ax_c.set_ylabel("hottest thermal zone (°C)")
    ax_c.set_title("Temperature across the run", fontsize=10)
    if not data.temperature.x:
        ax_c.text(0.5, 0.5, "no temperature was readable", ha="center", transform=ax_c.transAxes)

    for ax in (ax_t, ax_d, ax_c):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if data.roofline:
        ax_c.annotate(data.roofline, (0, 0), xycoords="figure fraction", xytext=(4, 2),
                      textcoords="offset points", fontsize=6, wrap=True, color="dimgray")
    return fig


def write_plot(
    report: BenchReport, path: str | Path, *, created_at: float | None = None
) -> PlotData:
    """Write the plot to ``path`` (.png or .svg); returns what was plotted."""

    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise UsageError(
            f"--plot {path}: unknown image type {path.suffix or '(none)'!r}",
            hint="Name the file .png or .svg.",
        )
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: no directory {path.parent}", hint="Create it first.")
    data = plot_data(report, created_at=created_at)
    fig = build_figure(data)
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
    return data
