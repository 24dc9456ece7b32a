"""Bench pieces without a phone: length parsing and clamping, exact-length prompts with the
real Qwen2 tokenizer, statistics, verdicts, and the store's bench tables (a real SQLite file)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenchat.bench.report import margin_pct, verdict
from qwenchat.bench.stats import percentile, summarize
from qwenchat.bench.sweep import parse_lengths, plan_lengths
from qwenchat.errors import UsageError


def test_ranges_lists_and_steps():
    assert parse_lengths("128..4096") == [128, 256, 512, 1024, 2048, 4096]
    assert parse_lengths("100..1000") == [100, 200, 400, 800, 1000]
    assert parse_lengths("128,1000,3000") == [128, 1000, 3000]
    assert parse_lengths("128..4096:512") == list(range(128, 4097, 512))
    assert parse_lengths("256, 128..256") == [128, 256]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("4096..128", "runs backwards"), ("0", "at least 1"), ("abc", "not a whole number"),
     ("", "empty"), ("128,,256", "empty item"), ("-5", "not a whole number"),
     ("128..4096:0", "at least 1")],
)
def test_bad_lengths(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_lengths(spec)


def test_clamping_keeps_room_for_generated_tokens():
    planned = plan_lengths([128, 4000, 4096], context_size=4096, gen_len=128, min_tokens=20)
    assert [(p.requested, p.tokens) for p in planned] == [(128, 128), (4000, 3968)]
    assert planned[1].clamped and "asked 4000" in planned[1].label
    with pytest.raises(UsageError, match="beyond"):
        plan_lengths([5000], context_size=4096, gen_len=16, min_tokens=20)
    with pytest.raises(UsageError, match="no room"):
        plan_lengths([128], context_size=4096, gen_len=4090, min_tokens=20)


@pytest.fixture(scope="module")
def maker():
    from qwenchat.bench.prompts import PromptMaker
    from qwenchat.models.tokens import default_counter

    return PromptMaker(default_counter(), adds_bos=False)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=20, max_value=4096), seed=st.integers(0, 2**31))
def test_prompts_have_exactly_the_asked_token_count(maker, n, seed):
    prompt = maker.make(n, seed)
    assert len(maker.counter.encode(prompt.text)) == n == prompt.tokens
    assert prompt.text.startswith("<|im_start|>system\n")
    assert prompt.text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_prompts_differ_per_seed_and_repeat_per_seed(maker):
    texts = {maker.make(512, seed).text for seed in range(6)}
    assert len(texts) == 6
    assert maker.make(512, 3).text == maker.make(512, 3).text


def test_bos_counts_as_a_prompt_token():
    from qwenchat.bench.prompts import PromptMaker
    from qwenchat.models.tokens import default_counter

    with_bos = PromptMaker(default_counter(), adds_bos=True)
    prompt = with_bos.make(300, 1)
    assert len(with_bos.counter.encode(prompt.text)) == 299


def test_summary_matches_statistics():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    s = summarize(values)
    assert s.median == statistics.median(values) and s.stddev == statistics.stdev(values)
    assert (s.min, s.max, s.n) == (1.0, 10.0, 6)
    assert s.p10 == pytest.approx(1.5) and s.p90 == pytest.approx(7.5)
    assert summarize([]) is None and summarize([7.0]).stddev == 0.0
    assert percentile([1, 2, 3, 4, 5], 50) == 3


def test_verdicts_and_margins():
    ratio = 100 / 170.593
    assert verdict(ratio, higher_is_faster=False) == "faster"
    assert margin_pct(ratio, higher_is_faster=False) == pytest.approx((1 - ratio) * 100)
    assert verdict(1.14, higher_is_faster=False) == "within"
    assert verdict(1.2, higher_is_faster=False) == "slower"
    assert verdict(20 / 13.65, higher_is_faster=True) == "faster"
    assert verdict(10 / 13.65, higher_is_faster=True) == "slower"


def test_trial_seeds_are_stable_and_distinct():
    from qwenchat.bench.runner import schedule, trial_seed
    from qwenchat.bench.sweep import PlannedLength

    seeds = {trial_seed(1, n, r) for n in (128, 256) for r in range(-1, 5)}
    assert len(seeds) == 12 and trial_seed(1, 128, 0) == trial_seed(1, 128, 0)
    slots = schedule([PlannedLength(128, 128)], warmup=2, repetitions=3)
    assert [s.rep for s in slots] == [-2, -1, 0, 1, 2] and slots[0].warmup


def _device_info(**changes):
    from qwenchat.device.info import DeviceInfo

    values = dict(
        serial="R5CX", address="192.168.1.20:5555", model="SM-S938B", manufacturer="samsung",
        soc="SM8750", soc_name="Snapdragon 8 Elite", hexagon_arch="v79",
        android_version="15", sdk="35", ram_mb=11700, free_mb=90000,
        work_dir="/data/local/tmp/qwenchat", transport="direct", simulated=False,
        fingerprint="samsung/x/y:15/release-keys",
    )
    values.update(changes)
    return DeviceInfo(**values)


def test_storage_round_trip_keeps_every_type(tmp_path):
    """A run and its trials come back from a real SQLite file as the typed records they went
    in as: the device as DeviceInfo, readings as ThermalReading, stop reasons as StopReason."""
    from qwenchat.bench.records import (
        GenieFigures,
        HostFigures,
        RunContext,
        RunPlan,
        RunStatus,
        StopReason,
        TrialRecord,
        TrialResult,
    )
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.bench.sweep import PlannedLength
    from qwenchat.bench.thermal import CooldownResult, PowerState, ThermalReading
    from qwenchat.device.info import DeviceInfo
    from qwenchat.store import open_store

    context = RunContext(
        device=_device_info(), model="llama-v2-7b-chat", published_key="llama-v2-7b-chat",
        config_hash="c" * 64, bundle_manifest_hash="m" * 64, context_size=1024,
        ctx_bins_bytes=3_900_000_000, bos_token=1, work_dir="/data/local/tmp/qwenchat",
    )
    plan = RunPlan(lengths=[PlannedLength(128, 128), PlannedLength(1024, 896)], gen_len=128,
                   repetitions=5, warmup=1, seed=42, load_timeout_s=30.0)
    trial = TrialRecord(
        length=128, requested=128, rep=0,
        result=TrialResult(
            length=128, seed=7, ok=True, stop_reason=StopReason.CONTEXT_FULL, exit_code=0,
            genie=GenieFigures(900.0, 1440.0, 88.9, 17.9, 128, 40, 2234.6, 3700.0, 12.0),
            host=HostFigures(2400.5, 4700.25, 88.25, 10.0, 14.7),
            libgenie_version="1.14.0", profile={"components": []},
        ),
        thermal_before=ThermalReading({"cpu": 41.5, "pa": None}, at=1.0),
        thermal_after=ThermalReading({"cpu": 47.0, "pa": None}, at=2.0),
        power=PowerState(80, True, False),
        cooldown=CooldownResult(3.5, False, 46.0, 44.5, "auto"),
        manifest_hash="m" * 64,
    )
    with open_store(tmp_path / "q.db") as store:
        storage = BenchStorage(store)
        run_id = storage.create_run(plan, context, ThermalReading({"cpu": 38.0}, at=0.5))
        storage.add_trial(run_id, trial)
        assert storage.run_ids(unfinished=True) == [run_id]
        storage.set_status(run_id, RunStatus.DONE, note=None)
        assert storage.run_ids(unfinished=True) == []
    with open_store(tmp_path / "q.db") as store:  # reopened: on disk
        run = BenchStorage(store).load_run(run_id)
    assert run.status is RunStatus.DONE and run.finished_at
    assert run.model == "llama-v2-7b-chat"
    assert isinstance(run.context.device, DeviceInfo) and run.context == context
    assert run.plan == plan and run.plan.lengths[1].clamped
    assert run.baseline == ThermalReading({"cpu": 38.0}, at=0.5)
    assert run.trials == [trial]
    assert run.trials[0].stop_reason is StopReason.CONTEXT_FULL
    assert isinstance(run.trials[0].thermal_after, ThermalReading)


def test_thermal_and_power_parsing():
    from qwenchat.bench.thermal import CooldownPolicy, parse_power, parse_zones

    zones = parse_zones(
        "/sys/class/thermal/thermal_zone0|cpu|41500\n/sys/class/thermal/thermal_zone1|pa|\n"
        "/sys/class/thermal/thermal_zone2|cpu|39000\n/sys/class/thermal/thermal_zone3|old|45\n"
    )
    assert zones == {"cpu": 41.5, "pa": None, "cpu#2": 39.0, "old": 45.0}
    sep = "__qwenchat_thermal__"
    assert parse_power(f"{sep}\n55\n{sep}\nDischarging\n{sep}\n1\n").as_json() == {
        "battery_level": 55, "charging": False, "power_save": True,
    }
    assert parse_power(f"{sep}\n{sep}\n{sep}\nnull\n").battery_level is None
    assert CooldownPolicy.parse("auto").mode == "auto"
    assert CooldownPolicy.parse("0").mode == "off" and CooldownPolicy.parse("30").seconds == 30
    with pytest.raises(UsageError):
        CooldownPolicy.parse("-3")


def test_published_expectation_per_length():
    from qwenchat.published import published_figures

    pub = published_figures("qwen2-7b-instruct")
    assert pub.expected_ttft_ms(3968) == pytest.approx(math.ceil(3968 / 128) * 170.593)


REAL_PROFILE = (
    Path(__file__).parent / "data" / "real" / "llama32_1b_xiaomi15_qnn236_UNATTRIBUTED.profile.json"
)


def _finished_record(stdout: bytes, prompt: str):
    """A runner record of a query that ended with [END] and exit 0, its profile a real
    GENIE_PROFILE capture (823 prompt tokens, 200 generated)."""
    import json

    from qwenchat.genie.profile import parse_profile
    from qwenchat.genie.stream import GenieStreamParser
    from qwenchat.runner.record import Outcome, QueryRecord, TimedEvent

    parser = GenieStreamParser(prompt)
    events = parser.feed(stdout) + parser.finish()
    raw = REAL_PROFILE.read_bytes()
    return QueryRecord(
        engine="process", started_at=10.0, sent_at=10.1, ended_at=17.0,
        events=[TimedEvent(11.0, e) for e in events], outcome=Outcome.FINISHED, exit_code=0,
        profile=parse_profile(raw), profile_json=json.loads(raw),
    )


@pytest.mark.parametrize(
    ("context_size", "gen_len", "reason"),
    [
        (1023, 256, "context_full"),  # 823 + 200 = the whole context: Genie ran out of room
        (1100, 256, "eos"),  # room left: the model ended its reply
        (1023, 200, "max_tokens"),  # --gen-len reached (and the context full): the limit
        (None, 256, "eos"),  # context unknown: no guess
    ],
)
def test_a_reply_that_fills_the_context_is_context_full_not_eos(context_size, gen_len, reason):
    from qwenchat.bench.trial import trial_result

    prompt = "<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n"
    stdout = (f"Using libGenie.so version 1.14.0\n\n[PROMPT]: {prompt}\n\n"
              "[BEGIN]: Once upon a time[END]\n\n").encode()
    record = _finished_record(stdout, prompt)
    assert record.ended and record.exit_code == 0  # Genie said nothing about the context
    result = trial_result(record, length=823, gen_len=gen_len, seed=1, context_size=context_size)
    assert result.ok and result.stop_reason.value == reason
    assert result.genie.prompt_tokens == 823 and result.genie.generated_tokens == 200
    assert result.libgenie_version == "1.14.0"
    assert result.host.first_token_ms == pytest.approx(900.0)  # 11.0 - 10.1 s


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("timed_out", "timed_out"), ("device_lost", "device_lost"), ("cut", "cut"),
     ("context_exceeded", "context_exceeded"), ("failed", "failed")],
)
def test_unfinished_queries_keep_their_own_stop_reason(outcome, reason):
    from qwenchat.bench.trial import trial_result
    from qwenchat.runner.record import Outcome, QueryRecord

    record = QueryRecord(engine="process", started_at=1.0, sent_at=1.5, ended_at=4.0,
                         outcome=Outcome(outcome), error="what happened")
    result = trial_result(record, length=128, gen_len=16, seed=1, context_size=4096)
    assert not result.ok and result.stop_reason.value == reason
    assert result.genie is None and result.host.total_ms == pytest.approx(2500.0)
