"""`qwenchat bench` end to end through the emulated phone: real ADB sockets, the simulated
genie-t2t-run, the real Qwen2 tokenizer and a real SQLite store, driven through the CLI."""

from __future__ import annotations

import json

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

TIME_SCALE = 0.01
FAST = ["--gen-len", "4", "-r", "1", "--warmup", "0", "--cooldown", "0", "--seed", "7"]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one error line stays one line


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def phone(bundled_phone):
    """Factory: an emulated phone (jitter off unless asked), bundle pushed unless told not."""

    def make(**overrides):
        overrides.setdefault("time_scale", TIME_SCALE)
        return bundled_phone(**overrides)

    return make


def bench(capsys, emu, *args: str) -> tuple[int, str, str]:
    return cli(capsys, "bench", "--connect", emu.address, "--transport", "direct", *args)


def _profile(tmp_path, **values) -> str:
    path = tmp_path / "device_profile.json"
    path.write_text(json.dumps(values))
    return path


def test_every_recorded_figure_is_what_the_simulated_genie_wrote(phone, capsys, monkeypatch):
    """Jitter off: each trial's figures equal the profile JSON the sim wrote for that trial.

    The profile files are read from the emulator's sandbox as the sim wrote them (the bench
    deletes its copies on the phone after pulling, so the test keeps them by wrapping rm)."""
    from qwenchat.runner.process import ProcessEngine

    emu, _ = phone()
    sandbox_profiles: list[dict] = []
    original = ProcessEngine._read_profile

    def keep(self, path, record):
        host = emu.config.fs_root / path.lstrip("/")
        sandbox_profiles.append(json.loads(host.read_text()))
        return original(self, path, record)

    monkeypatch.setattr(ProcessEngine, "_read_profile", keep)
    code, out, err = bench(capsys, emu, "-p", "64,300", "-r", "2", "--warmup", "1",
                           "--gen-len", "6", "--cooldown", "0", "--seed", "3", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["simulated"] is True
    trials = report["trials"]
    assert len(trials) == len(sandbox_profiles) == 6  # 2 lengths x (1 warm-up + 2)
    for trial, doc in zip(trials, sandbox_profiles, strict=True):
        events = {e["type"]: e for e in doc["components"][0]["events"]}
        query, create = events["GenieDialog_query"], events["GenieDialog_create"]
        genie = trial["result"]["genie"]
        assert trial["result"]["profile"] == doc
        assert genie["prompt_tokens"] == query["num-prompt-tokens"]["value"] == trial["length"]
        assert genie["ttft_ms"] == query["time-to-first-token"]["value"] / 1000
        assert genie["prompt_tok_s"] == query["prompt-processing-rate"]["value"]
        assert genie["decode_tok_s"] == query["token-generation-rate"]["value"]
        assert genie["generated_tokens"] == query["num-generated-tokens"]["value"]
        assert genie["generation_ms"] == query["token-generation-time"]["value"] / 1000
        assert genie["init_ms"] == create["init-time"]["value"] / 1000
        assert genie["query_ms"] == query["duration"] / 1000
        assert genie["free_ms"] == events["GenieDialog_free"]["duration"] / 1000
        host = trial["result"]["host"]
        assert host["first_token_ms"] > genie["ttft_ms"]  # host clock includes the model load
        assert host["total_ms"] >= genie["init_ms"] + genie["query_ms"]
        assert trial["thermal_before"]["zones"] and trial["power"]["battery_level"] == 87
    # The summaries are medians of exactly those samples.
    for length in report["lengths"]:
        samples = [t["result"]["genie"]["ttft_ms"] for t in trials
                   if t["length"] == length["length"] and not t["warmup"]]
        assert length["ttft_ms"]["median"] == pytest.approx(sum(samples) / 2)
        assert length["samples"]["ttft_ms"] == samples
    ctx = report["context"]
    assert ctx["device"]["soc"] == "SM8750" and ctx["seed"] == 3
    assert ctx["libgenie_version"] and len(ctx["config_hash"]) == 64
    assert len(ctx["bundle_manifest_hash"]) == 64


def test_custom_profile_verdict_at_time_scale_one(phone, capsys, tmp_path):
    """At time scale 1 the measured TTFT itself is 100 ms per chunk: faster by 1-100/170.593."""
    profile = _profile(tmp_path, prefill_chunk_ms=100, decode_tok_s=20, init_ms=30,
                       free_ms=5, chunk_tokens=128, jitter_pct=0)
    emu, _ = phone(time_scale=1.0, genie_profile=profile)
    code, out, err = bench(capsys, emu, "-p", "100", "-r", "1", "--warmup", "0",
                           "--gen-len", "8", "--cooldown", "0", "--json")
    assert code == 0, err
    (length,) = json.loads(out)["lengths"]
    ttft = length["ttft_vs_published"]
    expected_ratio = 100 / 170.593
    assert ttft["verdict"] == "faster"
    assert ttft["ratio_pct"] == pytest.approx(expected_ratio * 100, abs=3)
    assert ttft["margin_pct"] == pytest.approx((1 - expected_ratio) * 100, abs=3)
    decode = length["decode_vs_published"]
    assert decode["verdict"] == "faster", decode
    assert decode["ratio_pct"] == pytest.approx(20 / 13.65 * 100, rel=0.05)


def test_table_says_simulated_and_names_sources(phone, capsys):
    emu, _ = phone()
    code, out, err = bench(capsys, emu, "-p", "128", *FAST)
    assert code == 0, err
    assert "SIMULATED" in out
    assert "genie profiler" in out and "host clock" in out
    assert "not a measurement" in out  # the published upper bound, explained
    assert "[1/1] 128 tok rep 1" in err
    run_id = err.split("bench run ")[1].split()[0]
    code, out, _ = cli(capsys, "bench", "--show", run_id, "-o", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["type"] for r in rows] == ["trial", "length"]
    assert rows[0]["result"]["genie"]["prompt_tokens"] == 128 and rows[1]["length"] == 128


def test_a_prompt_token_count_genie_disagrees_with_is_an_error(phone, capsys, monkeypatch):
    from qwenchat.bench import prompts

    original = prompts.PromptMaker.make

    def one_token_too_many(self, n_tokens, seed):
        made = original(self, n_tokens, seed)
        cut = made.text.rindex("<|im_end|>")  # the end of the user turn
        text = made.text[:cut] + " Extra" + made.text[cut:]
        return prompts.BenchPrompt(text, made.tokens, seed)

    monkeypatch.setattr(prompts.PromptMaker, "make", one_token_too_many)
    emu, _ = phone()
    code, out, err = bench(capsys, emu, "-p", "128", *FAST, "--json")
    report = json.loads(out)
    (failure,) = report["failures"]
    assert "Genie counted 129 prompt tokens, the bench asked for 128" in failure["reason"]
    assert report["lengths"][0]["ttft_ms"] is None  # not a data point


def test_largest_length_is_clamped_and_labelled(phone, capsys):
    emu, _ = phone()
    code, out, err = bench(capsys, emu, "-p", "4096", *FAST, "--json")
    assert code == 0, err
    (length,) = json.loads(out)["lengths"]
    assert length["requested"] == 4096 and length["length"] == 4092 and length["clamped"]
    assert length["ttft_vs_published"]["expected"] == pytest.approx(32 * 170.593)
    assert "extrapolated" in length["ttft_vs_published"]["label"]
    assert length["padded_tokens"] == 4096


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "4096..128"], "runs backwards"),
        (["-p", "0"], "at least 1"),
        (["-p", "abc"], "not a whole number"),
        (["-p", "128,8192"], "beyond Qwen2-7B-Instruct's 4096-token context"),
        (["-p", "5"], "shorter than the chat template"),
        (["-p", "128", "-r", "0"], "at least 1"),
        (["-p", "128", "--cooldown", "soon"], "neither 'auto' nor"),
        (["-p", "128", "-o", "xml"], "not an output format"),
    ],
)
def test_bad_input_is_one_clear_line(phone, capsys, args, message):
    # Lengths are checked against the phone's context and template: those need the bundle.
    needs_bundle = args[1] in ("128,8192", "5")
    emu, _ = phone(push=needs_bundle)
    code, out, err = bench(capsys, emu, *args)
    assert code != 0
    assert message in err
    assert "Traceback" not in err and out == ""
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_phone_without_the_bundle(phone, capsys):
    emu, _ = phone(push=False)
    code, out, err = bench(capsys, emu, "-p", "128", *FAST)
    assert code != 0 and "no bundle on the phone" in err and "qwenchat push-assets" in err
    assert "Traceback" not in err


def test_genie_failing_mid_sweep_is_recorded_and_the_sweep_goes_on(phone, capsys, monkeypatch):
    """crash_after_tokens then fail_load are switched on between trials; the sweep finishes."""
    from qwenchat.bench import runner as runner_mod

    emu, _ = phone()
    faults = {1: ("crash_after_tokens", 2), 2: ("fail_load", True), 3: None}
    calls = {"n": 0}
    original = runner_mod.BenchRun._one

    def switching(self, slot, *args):
        calls["n"] += 1
        emu.config.faults.crash_after_tokens = None
        emu.config.faults.fail_load = False
        change = faults.get(calls["n"] - 1)
        if change:
            setattr(emu.config.faults, *change)
        emu.config.save()
        return original(self, slot, *args)

    monkeypatch.setattr(runner_mod.BenchRun, "_one", switching)
    code, out, err = bench(capsys, emu, "-p", "64,128", "-r", "2", "--warmup", "0",
                           "--gen-len", "4", "--cooldown", "0", "--json")
    assert code == 3, err  # ran with some failures, every length has a result
    report = json.loads(out)
    assert [t["ok"] for t in report["trials"]] == [True, False, False, True]
    crash, load = report["failures"]
    assert "139" in crash["reason"] or "crash" in crash["reason"].lower()
    assert "fail_load" in load["reason"] or "dialog" in load["reason"].lower()
    assert sum(length["trials_failed"] for length in report["lengths"]) == 2
    table_code, table, _ = cli(capsys, "bench", "--show", report["run_id"])
    assert table_code == 0 and "2 failed trial(s)" in table


def test_ctrl_c_keeps_trials_and_resume_finishes(phone, capsys, monkeypatch):
    from qwenchat.bench import runner as runner_mod

    emu, _ = phone()
    original = runner_mod.BenchRun._one
    calls = {"n": 0}

    def interrupt_third(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(runner_mod.BenchRun, "_one", interrupt_third)
    code, out, err = bench(capsys, emu, "-p", "64,128", "-r", "2", "--warmup", "0",
                           "--gen-len", "4", "--cooldown", "0", "--seed", "11", "--json")
    assert code == 130 and "stopped: interrupted" in err and "--resume" in err
    partial = json.loads(out)
    assert partial["status"] == "interrupted" and len(partial["trials"]) == 2
    monkeypatch.setattr(runner_mod.BenchRun, "_one", original)
    code, out, err = bench(capsys, emu, "--resume", "--json")
    assert code == 0, err
    full = json.loads(out)
    assert full["run_id"] == partial["run_id"] and full["status"] == "done"
    assert [(t["length"], t["rep"]) for t in full["trials"]] == [
        (64, 0), (64, 1), (128, 0), (128, 1)
    ]
    assert full["trials"][:2] == partial["trials"]
    code, _, err = bench(capsys, emu, "--resume", full["run_id"])
    assert code != 0 and "already complete" in err


def test_auto_cooldown_waits_for_the_phone_to_cool(phone, capsys, tmp_path):
    """Slow emulated prefill heats the NPU zones by several °C per trial; at a short time
    scale the phone cools in host fractions of a second, and auto cool-down waits for it."""
    profile = _profile(tmp_path, prefill_chunk_ms=3000, decode_tok_s=20, init_ms=100,
                       jitter_pct=0)
    # Scale 0.02: the phone cools with tau 0.9 s of host time, slow enough that the heat of a
    # trial (~10 °C on the NPU zones) is still there when the bench reads it afterwards.
    emu, _ = phone(time_scale=0.02, genie_profile=profile)
    code, out, err = bench(capsys, emu, "-p", "1024", "-r", "3", "--warmup", "0",
                           "--gen-len", "2", "--cooldown", "auto", "--json")
    assert code == 0, err
    report = json.loads(out)
    baseline = report["trials"][0]["thermal_before"]["hottest_c"]
    for before, trial in zip(report["trials"], report["trials"][1:], strict=False):
        assert before["thermal_after"]["hottest_c"] > baseline + 2  # each trial heats it
        cooldown = trial["cooldown"]
        assert cooldown["reason"] == "auto" and cooldown["reached"]
        assert cooldown["waited_s"] > 0
        assert trial["thermal_before"]["hottest_c"] <= baseline + 2.0 + 0.5
    assert report["plan"]["cooldown_policy"]["mode"] == "auto"


def test_max_temp_stop_stops_and_keeps_the_run(phone, capsys, tmp_path):
    profile = _profile(tmp_path, prefill_chunk_ms=3000, decode_tok_s=20, init_ms=100,
                       jitter_pct=0)
    # Scale 0.1: at smaller scales a loaded host's delay between trials is minutes of
    # emulated cooling, and the phone is back under the ceiling before the check.
    emu, _ = phone(time_scale=0.1, genie_profile=profile)
    code, out, err = bench(capsys, emu, "-p", "1024", "-r", "3", "--warmup", "0",
                           "--gen-len", "2", "--cooldown", "0", "--max-temp", "33",
                           "--max-temp-action", "stop", "--json")
    assert code != 0 and "above --max-temp 33" in err
    report = json.loads(out)
    assert report["status"] == "stopped" and len(report["trials"]) == 1


def test_qualcomm_protocol_sets_the_method(phone, capsys):
    from qwenchat.bench.runner import BenchOptions

    options = BenchOptions(lengths=[128], repetitions=2, warmup=0, gen_len=4,
                           cooldown="auto", protocol="qualcomm")
    assert (options.warmup, options.repetitions, options.gen_len, options.cooldown) == (
        1, 25, 128, "0"
    )
