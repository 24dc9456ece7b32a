"""build_report over a run assembled here from known trials (no phone): every summary, every
comparison with the published figures and every count is checked against numbers worked out
by hand or recomputed in this file from the raw samples, never by qwenchat.bench.

What it catches: host figures dropped or swapped for Genie's, a length beyond the published
context compared anyway (Genie has no published TTFT there), stop reasons miscounted, warm-ups
counted as measured trials, a model without published figures given verdicts anyway.
"""

from __future__ import annotations

import math

import pytest

from qwenchat.bench.records import (
    GenieFigures,
    HostFigures,
    RunContext,
    RunPlan,
    RunRecord,
    RunStatus,
    StopReason,
    TrialRecord,
    TrialResult,
)
from qwenchat.bench.report import build_report
from qwenchat.bench.sweep import PlannedLength
from qwenchat.device.info import DeviceInfo

# Qwen2-7B-Instruct's published figures (published_figures.json), written out by hand.
PUB_CHUNK_MS = 170.593
PUB_DECODE = 13.65
PUB_CONTEXT = 4096

# Five skewed repetitions at 64 tokens (one slow outlier): median, mean and min all differ.
TTFT_64 = [160.0, 120.0, 900.0, 150.0, 180.0]
DECODE_64 = [12.0, 30.0, 10.0, 14.0, 13.0]
HOST_FIRST_64 = [330.0, 300.0, 1000.0, 310.0, 320.0]
HOST_TOTAL_64 = [2000.0, 2100.0, 5000.0, 2050.0, 1990.0]
OVERHEAD_64 = [40.0, 35.0, 90.0, 30.0, 45.0]
STOPS_64 = [StopReason.EOS, StopReason.MAX_TOKENS, StopReason.EOS, StopReason.EOS,
            StopReason.MAX_TOKENS]
# 4100 tokens: beyond the published 4096-token context (no published TTFT to compare with).
TTFT_4100 = [6000.0, 6200.0]


def o_median(xs):
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def o_pct(xs, p):
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def o_summary(xs):
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"n": len(xs), "median": o_median(xs), "mean": mean, "stddev": sd,
            "min": min(xs), "max": max(xs), "p10": o_pct(xs, 10), "p90": o_pct(xs, 90)}


def _as_dict(summary):
    return None if summary is None else summary.as_json()


def _trial(length, rep, ttft, decode, *, host=None, stop=StopReason.EOS, ok=True,
           requested=None):
    genie = GenieFigures(init_ms=800.0 + rep, ttft_ms=ttft, prompt_tok_s=length / (ttft / 1000),
                         decode_tok_s=decode, prompt_tokens=length, generated_tokens=40 + rep,
                         generation_ms=3000.0, query_ms=3500.0, free_ms=10.0) if ok else None
    return TrialRecord(length=length, requested=requested or length, rep=rep, result=TrialResult(
        length=length, seed=rep, ok=ok, stop_reason=stop, genie=genie, host=host,
        error=None if ok else "Genie failed to load the model"))


def _context(published_key):
    device = DeviceInfo(
        serial="R5CX", address="10.0.0.2:5555", model="SM-S938B", manufacturer="samsung",
        soc="SM8750", soc_name="Snapdragon 8 Elite", hexagon_arch="v79", android_version="15",
        sdk="35", ram_mb=11700, free_mb=90000, work_dir="/data/local/tmp/qwenchat",
        transport="direct", simulated=True, fingerprint="x",
    )
    return RunContext(device=device, model="qwen2-7b-instruct", published_key=published_key,
                      config_hash="c" * 64, bundle_manifest_hash="m" * 64, context_size=8192,
                      ctx_bins_bytes=None, bos_token=-1, work_dir="/data/local/tmp/qwenchat",
                      simulated=True)


def _run(published_key="qwen2-7b-instruct"):
    trials = [_trial(64, -1, 5000.0, 1.0, host=HostFigures(9000.0, 9900.0, 500.0))]  # warm-up
    for i in range(5):
        trials.append(_trial(64, i, TTFT_64[i], DECODE_64[i], stop=STOPS_64[i], host=HostFigures(
            HOST_FIRST_64[i], HOST_TOTAL_64[i], OVERHEAD_64[i])))
    trials.append(_trial(64, 5, 0.0, 0.0, ok=False, stop=StopReason.FAILED))
    trials += [_trial(4100, i, TTFT_4100[i], 11.0, requested=4200) for i in range(2)]
    plan = RunPlan(lengths=[PlannedLength(64, 64), PlannedLength(4200, 4100)], gen_len=40,
                   repetitions=5, warmup=1, seed=1)
    return RunRecord("20261130-000000-abcdef", 0.0, RunStatus.DONE, plan,
                     _context(published_key), trials=trials)


@pytest.fixture
def report():
    # Per test, not per module: `make mutation` maps each line to the tests that run it, and
    # a module-scoped fixture's lines would be credited to the first test that used it only.
    return build_report(_run())


def test_host_figures_are_summarized_from_the_host_samples(report):
    r64 = report.lengths[0]
    assert r64.length == 64
    assert _as_dict(r64.host_first_token_ms) == pytest.approx(o_summary(HOST_FIRST_64))
    assert _as_dict(r64.host_total_ms) == pytest.approx(o_summary(HOST_TOTAL_64))
    assert _as_dict(r64.host_overhead_ms) == pytest.approx(o_summary(OVERHEAD_64))
    assert r64.samples["host_first_token_ms"] == HOST_FIRST_64
    # A length whose trials carry no host figures has no host summary.
    assert report.lengths[1].host_first_token_ms is None
    assert report.lengths[1].samples["host_first_token_ms"] == []


def test_genie_figures_and_verdicts_use_the_median_of_the_measured_trials(report):
    r64 = report.lengths[0]
    assert _as_dict(r64.ttft_ms) == pytest.approx(o_summary(TTFT_64))
    assert _as_dict(r64.decode_tok_s) == pytest.approx(o_summary(DECODE_64))
    assert (r64.trials_ok, r64.trials_failed) == (5, 1)  # the warm-up counts nowhere
    assert r64.padded_tokens == 128
    # By hand: median 160 ms vs 170.593 ms (93.8%: within 15%); min 120 ms is 29.7% faster.
    c = r64.ttft_vs_published
    assert (c.statistic, c.expected, c.measured, c.verdict) == ("median", PUB_CHUNK_MS, 160.0,
                                                                 "within")
    assert c.ratio_pct == pytest.approx(160 / 170.593 * 100)
    m = r64.ttft_min_vs_published
    assert (m.statistic, m.measured, m.standing, m.verdict) == ("min", 120.0, "faster", None)
    assert m.margin_pct == pytest.approx((1 - 120 / 170.593) * 100)
    d = r64.decode_vs_published
    assert (d.expected, d.measured, d.verdict) == (PUB_DECODE, 13.0, "within")
    assert r64.padded_prompt_tok_s == pytest.approx(128 / 0.160)


def test_stop_reasons_count_every_measured_trial_of_the_length(report):
    assert report.lengths[0].stop_reasons == {"eos": 3, "max_tokens": 2, "failed": 1}
    assert report.lengths[1].stop_reasons == {"eos": 2}
    assert [(f.length, f.rep, f.warmup, f.stop_reason) for f in report.failures] == [
        (64, 5, False, "failed")]


def test_a_length_beyond_the_published_context_has_no_published_ttft(report):
    r = report.lengths[1]
    assert (r.length, r.requested, r.clamped) == (4100, 4200, True)
    assert r.ttft_vs_published is None and r.ttft_min_vs_published is None
    assert r.ttft_ms.median == 6100.0
    assert r.decode_vs_published.measured == 11.0  # decode has no length limit
    assert any(f"beyond the published {PUB_CONTEXT}-token context" in n for n in report.notes)
    assert report.published_missing is None


def test_a_model_without_published_figures_gets_no_verdict():
    report = build_report(_run(published_key=None))
    assert report.published is None
    assert report.published_missing == "no published figure for qwen2-7b-instruct: no verdict"
    r64 = report.lengths[0]
    assert r64.ttft_vs_published is None and r64.decode_vs_published is None
    assert r64.padded_tokens is None and r64.padded_prompt_tok_s is None
    assert r64.ttft_ms.median == 160.0  # the figures are still there
    assert report.as_json()["published_missing"] == report.published_missing


def test_the_note_without_published_figures_names_the_missing_entry():
    unknown = build_report(_run(published_key="no-such-entry"))
    assert unknown.notes[0] == (
        "No published figure for qwen2-7b-instruct (published_figures.json has no entry "
        "'no-such-entry'): the figures are shown without a verdict.")
    none = build_report(_run(published_key=None))
    assert none.notes[0] == (
        "No published figure for qwen2-7b-instruct (published_figures.json has no entry): "
        "the figures are shown without a verdict.")
    assert not any(n.startswith("No published figure") for n in build_report(_run()).notes)


EXTRAPOLATED = ("The published upper TTFT bound (5458.976 ms) is not a measurement: it is the "
                "lower bound (170.593 ms, one 128-token pass) x 32 passes for a full 4096-token "
                "context.")
PASSES = ("The NPU prefills whole 128-token passes: padded tokens = ceil(n/128) x 128; prompt "
          "tok/s is over real tokens.")
VERDICTS = ("Verdicts use the median of the measured trials (Qualcomm's harness reports the "
            "median of its trials): within ±15% of the published figure, else faster or slower. "
            "The published lower bound is the shortest prompt's figure, a best case: our fastest "
            "trial (min) is set against it too, for reference, never as the verdict.")
MEASURED = ("Measured here: Genie's end-to-end profile on this phone (its GenieDialog_query "
            "event, from genie-t2t-run --profile or genie-app's profile save): "
            "TTFT is GenieDialog_query's time to the first token (tokenizer, every "
            "prompt-processor pass, sampler), the rate is the token generation rate after it, "
            "dialog overhead included.")
PUBLISHED = ("Published: AI Hub profile jobs of the model's context-binary parts on the named "
             "device (qai-hub-models info.yaml and perf.yaml): TTFT is the prompt processor's "
             "latency (NPU execution time of one 128-token pass, or of the one 1024-token pass "
             "for Llama-v2-7B-Chat), the rate is the token generator's (1 / its NPU execution "
             "time per token); Genie's tokenizer, sampler and dialog overhead are not included. "
             "The TTFT upper bound for a full 4096-token context is 32 x the 128-token lower "
             "bound, never measured.")
BEYOND = "Lengths beyond the published 4096-token context have no published TTFT."
CLAMPED = "Clamped lengths leave room for the generated tokens in the context."
QUALCOMM = ("Protocol qualcomm: 1 warm-up, 25 trials, no cool-down, 128 generated tokens "
            "(as AI Hub measured).")


def test_the_notes_say_exactly_what_applies_to_the_run(report):
    assert report.notes == [MEASURED, PUBLISHED, EXTRAPOLATED, PASSES, VERDICTS, BEYOND, CLAMPED]
    # The whole published context (4096, not beyond it), unclamped, by Qualcomm's protocol.
    run = _run()
    run.plan = RunPlan(lengths=[PlannedLength(64, 64), PlannedLength(4096, 4096)], gen_len=128,
                       repetitions=25, warmup=1, seed=1, protocol="qualcomm")
    for t in run.trials:
        if t.length == 4100:
            t.length = t.requested = 4096
    full = build_report(run)
    assert full.notes == [MEASURED, PUBLISHED, EXTRAPOLATED, PASSES, VERDICTS, QUALCOMM]
    r4096 = full.lengths[1]
    assert r4096.ttft_vs_published.expected == pytest.approx(32 * PUB_CHUNK_MS)
    assert r4096.ttft_vs_published.verdict == "within"  # 6100 ms vs 5458.976 ms: 111.7%
