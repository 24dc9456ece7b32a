"""Published figures are per chip, and every verdict says what each side measured.

qai-hub-models' perf.yaml lists figures per device: Llama-v2-7B-Chat is 1495.83 ms TTFT and
12.85 tok/s on the Samsung Galaxy S24 (Snapdragon 8 Gen 3, SM8650) but 1440 ms and 17.94
tok/s on the Snapdragon 8 Elite QRD (SM8750) (llama_v2_7b_chat/perf.yaml at 052dc1f3);
Qwen2-7B-Instruct is published for the 8 Elite only. The figures are AI Hub profile jobs of
the parts (NPU execution time), Genie's are end to end: every output format names both.
Expected values are written by hand from those files.

Failure modes:
- a phone is judged against another chip's figures (the 8 Elite's, whatever the phone);
- a chip with no published figure still gets a verdict (instead of "no published figure for
  that chip" and, at most, a labelled cross-chip reference);
- a verdict's table / JSON / CSV / Markdown / plot omits what either side measured;
- the (model, chip) lookup answers for an unknown chip or model.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.published import published_for

PUBLISHED_SAYS = "AI Hub profile jobs of the model's context-binary parts"
GENIE_SAYS = "Genie's end-to-end profile on this phone"


def test_figures_are_looked_up_by_model_and_chip():
    s24 = published_for("llama-v2-7b-chat", "SM8650")
    assert (s24.ttft_min_ms, s24.decode_tok_s, s24.soc) == (1495.83, 12.85, "SM8650")
    assert "Galaxy S24" in s24.device and "llama_v2_7b_chat/perf.yaml" in s24.source
    elite = published_for("llama-v2-7b-chat", "sm8750")
    assert (elite.ttft_min_ms, elite.decode_tok_s) == (1440.0, 17.94)
    xelite = published_for("qwen2.5-7b-instruct", "SC8380")
    assert (xelite.ttft_min_ms, xelite.ttft_max_ms, xelite.decode_tok_s) == (
        174.9494, 5598.3808, 12.33811)
    assert published_for("qwen2-7b-instruct", "SM8650") is None
    assert published_for("qwen2-7b-instruct", None) is None
    assert published_for("qwen3-8b", "SM8750") is None


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def gen3_bundles(tmp_path_factory):
    from qwenchat.emulator.bundle import make_bundle

    root = tmp_path_factory.mktemp("gen3")
    return {m: make_bundle(root / m, bin_size_mb=0.25, arch="v75", model=m)
            for m in ("llama-v2-7b-chat", "qwen2-7b-instruct")}  # fmt: skip


def _bench(capsys, emu, made, model, fmt):
    where = ["--connect", emu.address, "--transport", "direct"]
    code, out, err = _cli(capsys, "push-assets", "--bundle", str(made.bundle), "--qairt",
                          str(made.qairt), "--model", model, *where)
    assert code == 0, err
    code, out, err = _cli(capsys, "bench", *where, "-p", "100", "-r", "1", "--warmup", "0",
                          "--gen-len", "4", "--cooldown", "0", "-o", fmt)
    assert code == 0, err
    return out


def test_an_8_gen_3_phone_is_judged_against_the_8_gen_3_figures(
    gen3_bundles, emulator_factory, adb_key, capsys
):
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.02, jitter=False, soc="SM8650")
    report = json.loads(_bench(capsys, emu, gen3_bundles["llama-v2-7b-chat"],
                               "llama-v2-7b-chat", "json"))  # fmt: skip
    assert report["context"]["device"]["soc"] == "SM8650"
    assert report["published"]["soc"] == "SM8650"
    assert report["published"]["decode_tok_s"] == 12.85
    assert report["published"]["ttft_min_ms"] == 1495.83
    length = report["lengths"][0]
    assert length["ttft_vs_published"]["expected"] == 1495.83
    assert length["decode_vs_published"]["expected"] == 12.85
    defs = report["measured_definitions"]
    assert defs["measured"].startswith(GENIE_SAYS)
    assert defs["published"].startswith(PUBLISHED_SAYS)
    assert report["published_cross_chip_reference"] == []


def test_a_chip_without_figures_gets_no_verdict(gen3_bundles, emulator_factory, adb_key, capsys):
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.02, jitter=False, soc="SM8650")
    report = json.loads(_bench(capsys, emu, gen3_bundles["qwen2-7b-instruct"],
                               "qwen2-7b-instruct", "json"))  # fmt: skip
    assert report["published"] is None and report["measured_definitions"] is None
    assert report["published_missing"] == (
        "no published figure for qwen2-7b-instruct on Snapdragon 8 Gen 3 (SM8650) "
        "(Qualcomm publishes it for SM8750 only): no verdict"
    )
    length = report["lengths"][0]
    assert length["ttft_vs_published"] is None and length["decode_vs_published"] is None
    reference = [n for n in report["notes"] if n.startswith("Cross-chip reference only")]
    assert reference == [
        "Cross-chip reference only, not a verdict: Qwen2-7B-Instruct on Snapdragon 8 Elite QRD "
        "(later listed as Dragonwing Q-8750, same chip) (SM8750): TTFT 170.593-5458.976 ms, "
        "13.65 tok/s (Qualcomm AI Hub model pages; qai-hub-models perf.yaml "
        "(models/qwen2_7b_instruct))."
    ]
    table = _bench(capsys, emu, gen3_bundles["qwen2-7b-instruct"], "qwen2-7b-instruct", "table")
    assert "no published figure for qwen2-7b-instruct on Snapdragon 8 Gen 3" in " ".join(
        table.split())


def test_every_format_names_both_definitions(gen3_bundles, emulator_factory, adb_key, capsys,
                                             tmp_path):  # fmt: skip
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.02, jitter=False, soc="SM8650")
    made = gen3_bundles["llama-v2-7b-chat"]
    flat = " ".join(_bench(capsys, emu, made, "llama-v2-7b-chat", "table").split())
    assert GENIE_SAYS in flat and PUBLISHED_SAYS in flat
    md = _bench(capsys, emu, made, "llama-v2-7b-chat", "markdown")
    assert GENIE_SAYS in md and PUBLISHED_SAYS in md
    rows = list(csv.DictReader(io.StringIO(_bench(capsys, emu, made, "llama-v2-7b-chat", "csv"))))
    assert rows[0]["measured_as"].startswith(GENIE_SAYS)
    assert rows[0]["published_measured_as"].startswith(PUBLISHED_SAYS)
    assert rows[0]["published_decode_tok_s"] == "12.85"

    from qwenchat.bench.plot import plot_data
    from qwenchat.bench.report import build_report
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    with open_store() as store:
        run = BenchStorage(store).get_run(json.loads(_bench(
            capsys, emu, made, "llama-v2-7b-chat", "json"))["run_id"])  # fmt: skip
    data = plot_data(build_report(run))
    assert data.ttft_measured.label == "measured median (Genie profiler, end to end)"
    assert data.ttft_published.label == (
        "published on SM8650: 1495.83 ms flat (one 1024-token pass) (AI Hub profile of the "
        "parts, NPU time)"
    )
    assert data.decode_published.label == (
        "published on SM8650 12.85 tok/s (AI Hub profile of the token generator, NPU time)"
    )


def test_models_lists_each_chips_figures(capsys):
    assert run_app(app, ["models", "--no-phone", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    llama = rows["llama-v2-7b-chat"]
    assert (llama["published"]["soc"], llama["published"]["decode_tok_s"]) == ("SM8750", 17.94)
    others = {o["soc"]: (o["ttft_ms"], o["decode_tok_s"]) for o in llama["published_other_chips"]}
    assert others == {"SM8650": ([1495.83, 1495.83], 12.85), "SC8380": ([1919.0, 1919.0], 11.2)}
    assert rows["qwen2-7b-instruct"]["published_other_chips"] == []
