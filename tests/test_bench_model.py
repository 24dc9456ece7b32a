"""A bench run belongs to a model: it records it, takes the phone's by default, refuses a
wrong one, sweeps the model's context, compares with that model's published figures (or says
there are none), and `results compare` keeps models apart.

The phone is the emulated one with the synthetic Qwen2 bundle; for the other models its
manifest is re-labelled and its genie_config given the model's context, and a registry entry
stands in for the one the model registry gets (Qwen2's chat template: the emulated phone's
tokenizer is Qwen2's). Expected published values are written out by hand from Qualcomm's
perf.yaml figures.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.layout import PhoneLayout

FAST = ["--gen-len", "4", "-r", "1", "--warmup", "0", "--cooldown", "0", "--seed", "3"]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def models(monkeypatch):
    """Registry entries for the other models: name, context and published key as the real
    entries have them."""
    from qwenchat.models import registry

    qwen2 = registry.get_model("qwen2-7b-instruct")
    extra = {
        "llama-v2-7b-chat": replace(qwen2, name="llama-v2-7b-chat",
                                    display_name="Llama-v2-7B-Chat", context_size=1024,
                                    published_key="llama-v2-7b-chat", aliases=()),
        "baichuan2-7b": replace(qwen2, name="baichuan2-7b", display_name="Baichuan2-7B",
                                published_key="baichuan2-7b", aliases=()),
        "mystery-7b": replace(qwen2, name="mystery-7b", display_name="Mystery-7B",
                              published_key=None, aliases=()),
    }
    monkeypatch.setattr(registry, "MODELS", (qwen2, *extra.values()))
    return extra


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def phone(emulator_factory, adb_key, synthetic_bundle):
    """Factory: an emulated phone holding the bundle, labelled for ``model`` with the given
    context size in its genie_config.json."""
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice

    opened = []

    def make(model: str | None = None, context: int | None = None):
        emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.01, jitter=False)
        dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
        opened.append(dev)
        # The context goes in through push-assets' own override, so the bundle stays whole
        # (integrity refuses a config edited behind the manifest's back).
        plan = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750",
                           tokenizer=synthetic_bundle.tokenizer, context_size=context)
        layout = PhoneLayout()
        push_assets(dev, plan, layout)
        if model is not None:
            manifest = json.loads(dev.pull_bytes(layout.manifest_path))
            manifest["model"] = model
            dev.push_bytes(json.dumps(manifest).encode(), layout.manifest_path)
        return emu

    yield make
    for dev in opened:
        dev.close()


def bench(capsys, emu, *args: str) -> tuple[int, str, str]:
    return cli(capsys, "bench", "--connect", emu.address, "--transport", "direct", *args)


def test_a_run_names_its_model_everywhere(phone, capsys):
    emu = phone()
    code, out, err = bench(capsys, emu, "-p", "128", *FAST, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == "qwen2-7b-instruct" and report["run_id"]
    assert report["context"]["model"] == "qwen2-7b-instruct"
    assert report["published"]["model"] == "Qwen2-7B-Instruct"
    code, out, _ = cli(capsys, "results", "list", "--json")
    assert json.loads(out)[0]["model"] == "qwen2-7b-instruct"
    code, out, _ = cli(capsys, "bench", "--show", "last", "-o", "csv")
    assert out.splitlines()[1].split(",")[1] == "qwen2-7b-instruct"
    code, out, _ = bench(capsys, emu, "-p", "128", *FAST, "--model", "Qwen2")  # an alias
    assert code == 0 and "model qwen2-7b-instruct" in out


def test_llama_sweeps_its_1024_context_against_one_flat_pass(phone, capsys, models):
    emu = phone("llama-v2-7b-chat", context=1024)
    code, out, err = bench(capsys, emu, *FAST, "-o", "json")  # no -p: the model's default
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == "llama-v2-7b-chat"
    assert [(p["requested"], p["tokens"]) for p in report["plan"]["lengths"]] == [
        (128, 128), (256, 256), (512, 512), (1024, 1020)  # no 2048 or 4096
    ]
    for length in report["lengths"]:
        assert length["ttft_vs_published"]["expected"] == 1440.0  # flat, whatever the length
        assert length["padded_tokens"] == 1024  # one 1024-token pass
        assert length["decode_vs_published"]["expected"] == 17.94
    assert report["published"]["ttft_model"] == "one-pass"
    assert any("both bounds of the range are equal" in n for n in report["notes"])
    code, out, err = bench(capsys, emu, "-p", "128,2048", *FAST)
    assert code == 2 and out == ""
    assert "error: prompt length 2048 is beyond Llama-v2-7B-Chat's 1024-token context" in err


def test_the_wrong_model_is_refused_before_any_trial(phone, capsys, models):
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    emu = phone("llama-v2-7b-chat", context=1024)
    code, out, err = bench(capsys, emu, "-p", "128", *FAST, "--model", "qwen2-7b-instruct")
    assert code == 1 and out == ""
    assert "error: the phone holds Llama-v2-7B-Chat, not Qwen2-7B-Instruct" in err
    with open_store() as store:
        assert BenchStorage(store).run_ids() == []  # refused before a run was made
    code, _, err = bench(capsys, emu, "-p", "128", *FAST, "--model", "gpt-9")
    assert code == 2 and "unknown model 'gpt-9'" in err


def test_baichuan2_compares_with_208_048_ms_per_chunk_and_7_72_tok_s(phone, capsys, models):
    emu = phone("baichuan2-7b")
    code, out, err = bench(capsys, emu, "-p", "100,128,129,300", *FAST, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    expected = {100: 208.048, 128: 208.048, 129: 416.096, 300: 624.144}
    for length in report["lengths"]:
        assert length["ttft_vs_published"]["expected"] == pytest.approx(
            expected[length["length"]])
        assert length["decode_vs_published"]["expected"] == 7.72
    assert "baichuan2_7b/perf.yaml" in report["published"]["source"]


def test_no_published_figure_means_no_verdict_in_any_format(phone, capsys, models):
    emu = phone("mystery-7b")
    code, out, err = bench(capsys, emu, "-p", "128,300", *FAST, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    run_id = report["run_id"]
    assert report["published"] is None
    assert report["published_missing"] == "no published figure for mystery-7b: no verdict"
    for length in report["lengths"]:
        assert length["ttft_ms"] is not None  # measured all the same
        assert length["ttft_vs_published"] is None and length["decode_vs_published"] is None
        assert length["ttft_min_vs_published"] is None
    code, table, _ = cli(capsys, "results", "show", run_id)
    assert "no published figure for mystery-7b: no verdict." in table
    assert "within" not in table and "faster" not in table and "slower" not in table
    code, md, _ = cli(capsys, "results", "show", run_id, "-o", "md")
    assert "**no published figure for mystery-7b: no verdict.**" in md
    assert "within" not in md and "faster" not in md and "slower" not in md
    code, text, _ = cli(capsys, "results", "show", run_id, "-o", "csv")
    import csv
    import io

    for row in csv.DictReader(io.StringIO(text)):
        assert row["ttft_verdict"] == "" and row["decode_verdict"] == ""
        assert row["published_note"] == "no published figure for mystery-7b: no verdict"


def test_compare_refuses_two_models_unless_asked(phone, capsys, models):
    code, out, _ = bench(capsys, phone(), "-p", "128", *FAST, "-o", "json")
    qwen = json.loads(out)["run_id"]
    code, out, _ = bench(capsys, phone("baichuan2-7b"), "-p", "128", *FAST, "-o", "json")
    baichuan = json.loads(out)["run_id"]
    code, out, err = cli(capsys, "results", "compare", qwen, baichuan)
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: run {qwen} measured qwen2-7b-instruct and run {baichuan} "
                      "measured baichuan2-7b: not compared"]
    assert "--allow-different-models" in err
    code, out, err = cli(capsys, "results", "compare", qwen, baichuan,
                         "--allow-different-models", "-o", "json")
    assert code == 0, err
    result = json.loads(out)
    assert any("different models (qwen2-7b-instruct vs baichuan2-7b)" in w
               for w in result["warnings"])
    assert "model: qwen2-7b-instruct → baichuan2-7b" in result["changes"]
