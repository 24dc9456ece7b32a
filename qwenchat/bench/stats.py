"""Summary statistics for a set of samples (median first: it is what Qualcomm reports)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), p in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    mean: float
    stddev: float  # sample stddev; 0 for one sample
    min: float
    max: float
    p10: float
    p90: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: list[float]) -> Summary | None:
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return Summary(
        n=len(values),
        median=statistics.median(values),
        mean=statistics.fmean(values),
        stddev=statistics.stdev(values) if len(values) > 1 else 0.0,
        min=min(values),
        max=max(values),
        p10=percentile(values, 10),
        p90=percentile(values, 90),
    )
