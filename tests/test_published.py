"""Published AI Hub figures: package data with source, and the published TTFT model,
checked against values worked out by hand."""

from __future__ import annotations

import pytest

from qwenchat.errors import UsageError
from qwenchat.published import published_figures, published_models


def test_qwen2_figures_and_provenance():
    f = published_figures("qwen2-7b-instruct")
    assert f.model == "Qwen2-7B-Instruct"
    assert f.soc == "SM8750" and "8 Elite" in f.device
    assert f.precision == "w4a16" and f.context_length == 4096
    assert (f.ttft_min_ms, f.ttft_max_ms, f.decode_tok_s) == (170.593, 5458.976, 13.65)
    assert "perf.yaml" in f.source and f.date.startswith("2024")
    assert "NOT measured" in f.range_definition
    assert f.upper_bound_measured is False
    assert f.chunk_size == 128


def test_qwen25_figures_are_perf_yamls_unrounded_values():
    f = published_figures("Qwen2.5-7B-Instruct")
    # perf.yaml's values; AI Hub's page rounds them to 135.654-4340.922 ms and 15.40 tok/s.
    assert (f.ttft_min_ms, f.ttft_max_ms, f.decode_tok_s) == (135.6538, 4340.9216, 15.40274)
    assert f"{f.ttft_min_ms:.3f}-{f.ttft_max_ms:.3f} {f.decode_tok_s:.2f}" == (
        "135.654-4340.922 15.40"
    )
    # The upper bound is 32 x the UNROUNDED lower bound (32 x 135.654 would be 4340.928).
    assert 32 * 135.6538 == pytest.approx(f.ttft_max_ms, abs=1e-9)
    assert f.ttft_model == "chunked" and f.chunk_size == 128 and f.context_length == 4096
    assert "qwen2_5_7b_instruct/perf.yaml" in f.source and f.date == "2025-06-23"


def test_llama2_is_one_flat_pass_of_1024_tokens():
    f = published_figures("llama-v2-7b-chat")
    assert f.model == "Llama-v2-7B-Chat" and f.context_length == 1024
    assert (f.ttft_min_ms, f.ttft_max_ms, f.decode_tok_s) == (1440.0, 1440.0, 17.94)
    assert f.ttft_model == "one-pass" and f.chunk_size == 1024
    # Flat: one 1024-token pass whatever the prompt length, and 1024 padded tokens.
    for n in (1, 128, 129, 500, 1024):
        assert f.expected_ttft_ms(n) == 1440.0
        assert f.padded_tokens(n) == 1024
    with pytest.raises(ValueError):
        f.expected_ttft_ms(1025)
    assert "llama_v2_7b_chat/perf.yaml" in f.source and "052dc1f3" in f.source
    assert "both values in the range are the same" in f.range_definition
    assert "1440 ms flat" in f.ttft_formula


def test_baichuan2_is_208_048_ms_per_128_token_chunk():
    f = published_figures("baichuan2-7b")
    assert (f.ttft_min_ms, f.ttft_max_ms, f.decode_tok_s) == (208.048, 6657.536, 7.72)
    assert f.expected_ttft_ms(128) == pytest.approx(208.048)
    assert f.expected_ttft_ms(129) == pytest.approx(416.096)
    assert f.expected_ttft_ms(1000) == pytest.approx(1664.384)  # 8 chunks
    assert f.expected_ttft_ms(4096) == pytest.approx(6657.536)
    assert "baichuan2_7b/perf.yaml" in f.source and f.date == "2025-05-07"


def test_every_model_names_its_source_and_date():
    assert set(published_models()) == {
        "qwen2-7b-instruct", "qwen2.5-7b-instruct", "llama-v2-7b-chat", "baichuan2-7b",
    }
    for key in published_models():
        f = published_figures(key)
        assert f.key == key and f.source and f.date[:4] in ("2024", "2025")
        assert f.soc == "SM8750" and f.precision == "w4a16"


def test_no_figure_is_none_not_a_guess():
    from qwenchat.published import find_published

    assert find_published(None) is None
    assert find_published("qwen3-8b") is None
    assert find_published("Llama_V2_7B_Chat").model == "Llama-v2-7B-Chat"


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
    assert published_figures("qwen2-7b-instruct").expected_ttft_ms(n) == pytest.approx(expected)


def test_upper_bound_is_the_model_at_the_full_context():
    for model in published_models():
        f = published_figures(model)
        assert f.expected_ttft_ms(f.context_length) == pytest.approx(f.ttft_max_ms, rel=1e-9)
        if f.ttft_model == "chunked":
            assert "32 passes" in f.published_upper_is_extrapolated
        else:
            assert "both bounds of the range are equal" in f.published_upper_is_extrapolated
    assert published_figures("qwen2-7b-instruct").prompt_tok_s == pytest.approx(750.32, abs=0.01)


@pytest.mark.parametrize("n", [0, -5, 4097])
def test_expected_ttft_outside_range(n):
    with pytest.raises(ValueError):
        published_figures("qwen2-7b-instruct").expected_ttft_ms(n)


def test_unknown_model():
    with pytest.raises(UsageError, match="llama"):
        published_figures("llama-3-8b")
