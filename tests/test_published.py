"""Published AI Hub figures: package data with source, and the published TTFT model,
checked against values worked out by hand."""

from __future__ import annotations

import pytest

from qwenchat.errors import UsageError
from qwenchat.published import published_figures, published_models


def test_qwen2_figures_and_provenance():
    f = published_figures()
    assert f.model == "Qwen2-7B-Instruct"
    assert f.soc == "SM8750" and "8 Elite" in f.device
    assert f.precision == "w4a16" and f.context_length == 4096
    assert (f.ttft_min_ms, f.ttft_max_ms, f.decode_tok_s) == (170.593, 5458.976, 13.65)
    assert "perf.yaml" in f.source and f.date.startswith("2024")
    assert "NOT measured" in f.range_definition
    assert f.upper_bound_measured is False
    assert f.chunk_size == 128


def test_qwen25_figures():
    f = published_figures("Qwen2.5-7B-Instruct")
    assert (f.ttft_min_ms, f.ttft_max_ms, f.decode_tok_s) == (135.654, 4340.922, 15.40)
    assert set(published_models()) == {"qwen2-7b-instruct", "qwen2.5-7b-instruct"}


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, 170.593),
        (128, 170.593),
        (129, 341.186),
        (256, 341.186),
        (1000, 1364.744),
        (4096, 5458.976),
    ],
)
def test_expected_ttft_by_hand(n, expected):
    assert published_figures().expected_ttft_ms(n) == pytest.approx(expected)


def test_upper_bound_is_32_lower_bounds():
    for model in published_models():
        f = published_figures(model)
        # Qwen2.5: 32 x 135.654 = 4340.928 vs 4340.922 published, so the upper bound was
        # computed from the unrounded lower bound (135.6538...): equal to 1e-5, not exactly.
        assert f.expected_ttft_ms(f.context_length) == pytest.approx(f.ttft_max_ms, rel=1e-5)
        assert "32 passes" in f.published_upper_is_extrapolated
    assert published_figures().prompt_tok_s == pytest.approx(750.32, abs=0.01)


@pytest.mark.parametrize("n", [0, -5, 4097])
def test_expected_ttft_outside_range(n):
    with pytest.raises(ValueError):
        published_figures().expected_ttft_ms(n)


def test_unknown_model():
    with pytest.raises(UsageError, match="llama"):
        published_figures("llama-3-8b")
