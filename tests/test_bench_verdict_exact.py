"""The verdict arithmetic of bench reports against hand-worked numbers: which side of the
published figure is faster for TTFT (lower) and for decode (higher), the margin's sign, the
±15% band, and the words and labels a report prints."""

from __future__ import annotations

import pytest

from qwenchat.bench.report import (
    _fmt,
    _spread,
    _ttft_label,
    compare,
    margin_pct,
    standing,
    verdict,
)
from qwenchat.bench.stats import Summary
from qwenchat.published import PublishedFigures


@pytest.mark.parametrize(
    "ratio, higher_is_faster, expected",
    [
        (1.0, True, "within"), (1.1, False, "within"), (0.9, True, "within"),
        (1.2, True, "faster"), (1.2, False, "slower"),
        (0.8, True, "slower"), (0.8, False, "faster"),
        (0.5, False, "faster"), (2.0, False, "slower"),
    ],
)
def test_verdict_sides(ratio, higher_is_faster, expected):
    assert verdict(ratio, higher_is_faster=higher_is_faster) == expected


def test_margin_is_positive_when_faster_for_both_directions():
    assert margin_pct(0.5, higher_is_faster=False) == 50.0  # TTFT half the published
    assert margin_pct(0.5, higher_is_faster=True) == -50.0  # decode half the published
    assert margin_pct(1.25, higher_is_faster=True) == 25.0
    assert margin_pct(1.25, higher_is_faster=False) == -25.0


def test_compare_a_ttft_half_the_published_is_fifty_percent_faster():
    c = compare("median", 200.0, 100.0, higher_is_faster=False, is_verdict=True, label="L")
    assert (c.statistic, c.expected, c.measured) == ("median", 200.0, 100.0)
    assert (c.ratio_pct, c.margin_pct, c.standing, c.verdict, c.label) == (
        50.0, 50.0, "faster", "faster", "L",
    )


def test_compare_for_reference_only_has_no_verdict_but_keeps_its_standing():
    c = compare("min", 10.0, 15.0, higher_is_faster=True, is_verdict=False)
    assert (c.ratio_pct, c.margin_pct, c.standing, c.verdict, c.label) == (
        150.0, 50.0, "faster", None, "",
    )


def test_standing_words():
    within = compare("median", 100.0, 105.0, higher_is_faster=True, is_verdict=True)
    slower = compare("median", 100.0, 75.0, higher_is_faster=True, is_verdict=True)
    faster = compare("median", 200.0, 100.0, higher_is_faster=False, is_verdict=True)
    assert standing(within) == "within ±15%"
    assert standing(slower) == "slower by 25.0%"
    assert standing(faster) == "faster by 50.0%"


def test_number_formatting():
    assert _fmt(None) == "-"
    assert _fmt(1234.56) == "1,234.6"
    assert _fmt(1234.56, 0) == "1,235"
    assert _fmt(3.14159, 2) == "3.14"


def test_spread_text():
    s = Summary(n=5, median=3.0, mean=22.0, stddev=43.62, min=1.0, max=100.0, p10=1.4, p90=61.6)
    assert _spread(s) == "±43.6  1.0–100.0\np10 1.4 p90 61.6"
    assert _spread(s, 2) == "±43.62  1.00–100.00\np10 1.40 p90 61.60"
    assert _spread(None) == "-"


def _pub(**over):
    fields = dict(
        key="k", model="M", device="D", soc="S", precision="w4a16", context_length=4096,
        ttft_min_ms=170.593, ttft_max_ms=5458.976, decode_tok_s=13.65, source="src",
        date="2025", range_definition="r",
    )
    fields.update(over)
    return PublishedFigures(**fields)


def test_ttft_label_for_a_chunked_model():
    pub = _pub()
    assert _ttft_label(pub, 300, 4096) == "published model at 300 tokens: ceil(300/128) x 170.593 ms"
    assert _ttft_label(pub, 4096, 4096) == (
        "published model at 4096 tokens: ceil(4096/128) x 170.593 ms (the published "
        "5458.976 ms for 4096 tokens is extrapolated, 32 x the lower bound, not measured)"
    )
    # The largest length, but within one pass: nothing extrapolated.
    assert _ttft_label(pub, 128, 128) == "published model at 128 tokens: ceil(128/128) x 170.593 ms"
    assert _ttft_label(pub, 129, 129).endswith("not measured)")


def test_ttft_label_for_a_one_pass_model():
    pub = _pub(ttft_model="one-pass", chunk_size=1024)
    assert _ttft_label(pub, 50, 4096) == (
        "published 170.593 ms for any prompt up to 1024 tokens (one 1024-token pass)"
    )
