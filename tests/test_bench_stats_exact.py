"""Bench statistics against values worked out by hand for skewed samples (median != mean),
so a wrong statistic (mean for median, population for sample stddev, the wrong rank in a
percentile) cannot pass."""

from __future__ import annotations

import math

import pytest

from qwenchat.bench.stats import percentile, summarize


def test_summary_of_a_skewed_sample_matches_hand_worked_values():
    # Given out of order: the summary must sort. Mean 22; deviations -21 -20 -19 -18 78,
    # squares sum to 7610; sample variance 7610 / (5 - 1).
    s = summarize([100, 3, 1, 4, 2])
    assert s.n == 5
    assert s.median == 3.0
    assert s.mean == 22.0
    assert s.stddev == pytest.approx(math.sqrt(7610 / 4), rel=1e-12)
    assert (s.min, s.max) == (1.0, 100.0)
    # numpy's linear rule: rank (5 - 1) * 0.1 = 0.4 -> 1 + 0.4 * (2 - 1);
    # rank 3.6 -> 4 + 0.6 * (100 - 4).
    assert s.p10 == pytest.approx(1.4, abs=1e-12)
    assert s.p90 == pytest.approx(61.6, abs=1e-12)


def test_summary_of_an_even_sample_takes_the_middle_pair_for_the_median():
    s = summarize([0.5, 9.0, 0.5, 0.75, 2.25, 0.5])
    assert s.median == 0.625  # (0.5 + 0.75) / 2
    assert s.mean == 2.25  # 13.5 / 6


def test_missing_samples_are_left_out_not_counted_as_zero():
    s = summarize([None, 4, None, 8])
    assert (s.n, s.median, s.mean, s.min) == (2, 6.0, 6.0, 4.0)
    assert summarize([None, None]) is None
    assert summarize([]) is None


def test_one_sample_has_zero_spread_and_every_percentile_is_that_sample():
    s = summarize([7.5])
    assert (s.n, s.median, s.mean, s.stddev, s.min, s.max, s.p10, s.p90) == (
        1, 7.5, 7.5, 0.0, 7.5, 7.5, 7.5, 7.5,
    )


def test_percentile_interpolates_between_closest_ranks():
    values = [40, 10, 30, 20]
    assert percentile(values, 0) == 10
    assert percentile(values, 100) == 40
    assert percentile(values, 50) == 25.0  # rank 1.5: halfway from 20 to 30
    assert percentile(values, 25) == 17.5  # rank 0.75
    assert percentile(values, 90) == pytest.approx(37.0)  # rank 2.7: 30 + 0.7 * 10
    assert percentile([3, 1, 2, 5, 4], 50) == 3  # an exact rank needs no interpolation


def test_percentile_of_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_summary_json_has_every_field_by_name():
    assert summarize([2, 4]).as_json() == {
        "n": 2, "median": 3.0, "mean": 3.0, "stddev": pytest.approx(math.sqrt(2)),
        "min": 2.0, "max": 4.0, "p10": pytest.approx(2.2), "p90": pytest.approx(3.8),
    }
