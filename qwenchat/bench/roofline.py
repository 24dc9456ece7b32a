"""The decode roofline: how close a run's decode tok/s comes to the phone's memory-bandwidth
limit.

Decode on the NPU is memory-bound: every weight is read once per generated token, so
``limit tok/s = DRAM bandwidth / bytes read per token``. Bytes per token is taken as the
total size of the bundle's context binaries (the w4a16 weights plus a little graph data; the
KV cache read grows with the context and is ignored, so the limit is an upper bound). The
bandwidth comes from ``qwenchat/data/soc_bandwidth.json`` (approximate peak figures); an SoC
not in it gets no roofline, and the report says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from qwenchat.bench.stats import summarize
from qwenchat.manifest import BundleManifest

if TYPE_CHECKING:
    from qwenchat.bench.report import BenchReport

# Below this the bundle cannot hold a 7B model's weights (w4a16 7B is ~4.5-5 GB): it is the
# emulator's synthetic bundle, and a share of the limit computed from it would be meaningless.
PLAUSIBLE_BUNDLE_BYTES = 1_000_000_000


@dataclass(frozen=True)
class SocBandwidth:
    soc: str
    name: str
    gb_s: float
    source: str


@cache
def soc_bandwidths() -> dict[str, SocBandwidth]:
    text = (resources.files("qwenchat") / "data" / "soc_bandwidth.json").read_text("utf-8")
    data = json.loads(text)
    return {
        soc.upper(): SocBandwidth(soc.upper(), e["name"], float(e["gb_s"]), e["source"])
        for soc, e in data["socs"].items()
    }


def ctx_bins_bytes(manifest: bytes | str | None, ctx_bins: list[str]) -> int | None:
    """Total size of the context binaries named in the config, from the bundle manifest.

    The manifest's keys are paths under the phone's work dir; the config names the binaries
    relative to the bundle dir, so they are matched by file name. None when nothing matches.
    """
    if manifest is None or not ctx_bins:
        return None

    try:
        files = BundleManifest.from_json(manifest).files
    except Exception:  # noqa: BLE001 - an unreadable manifest just means "size unknown"
        return None
    wanted = {name.rsplit("/", 1)[-1] for name in ctx_bins}
    sizes = [e.size for path, e in files.items() if path.rsplit("/", 1)[-1] in wanted]
    return sum(sizes) if sizes else None


@dataclass
class Roofline:
    soc: str | None
    simulated: bool
    bytes_per_token: int | None = None
    bandwidth_gb_s: float | None = None
    bandwidth_source: str | None = None
    limit_tok_s: float | None = None
    measured_tok_s: float | None = None  # median decode tok/s over every length (genie)
    share_pct: float | None = None
    omitted: str | None = None  # why there is no share

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One sentence for the report."""
        if self.omitted:
            return f"Roofline: omitted: {self.omitted}."
        tag = "SIMULATED " if self.simulated else ""
        # Not omitted: build() set every figure.
        assert self.bytes_per_token is not None
        return (
            f"Roofline ({tag}decode, memory-bound): {self.measured_tok_s:.2f} tok/s (genie, "
            f"median over all lengths) is {self.share_pct:.1f}% of the "
            f"{self.limit_tok_s:.1f} tok/s limit = {self.bandwidth_gb_s:g} GB/s ({self.soc}, "
            f"{self.bandwidth_source}) / {self.bytes_per_token / 1e9:.2f} GB of context "
            f"binaries read per token."
        )


def roofline(report: BenchReport) -> Roofline:
    """The roofline of a ``BenchReport`` (built by ``report.build_report``)."""

    ctx = report.context
    soc = (ctx.device.soc or "").upper() or None
    out = Roofline(soc=soc, simulated=report.simulated)
    size = ctx.ctx_bins_bytes
    decode = summarize([v for r in report.lengths for v in r.samples.get("decode_tok_s", [])])
    known = soc_bandwidths().get(soc or "")
    if known is None:
        out.omitted = (
            f"SoC {soc or 'unknown'} is not in the bandwidth table "
            f"({', '.join(sorted(soc_bandwidths()))})"
        )
        return out
    out.bandwidth_gb_s, out.bandwidth_source = known.gb_s, known.source
    if not size:
        out.omitted = "the run does not record the size of its context binaries"
        return out
    out.bytes_per_token = int(size)
    out.limit_tok_s = known.gb_s * 1e9 / size
    if report.simulated and size < PLAUSIBLE_BUNDLE_BYTES:
        out.omitted = (
            f"the bundle is synthetic ({size / 1e6:.1f} MB of context binaries, SIMULATED run): "
            "its decode rate is not bound by memory bandwidth"
        )
        return out
    if decode is None:
        out.omitted = "no successful trial measured decode tok/s"
        return out
    out.measured_tok_s = decode.median
    out.share_pct = decode.median / out.limit_tok_s * 100.0
    return out
