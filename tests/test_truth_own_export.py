"""A model's own export, as qai-hub-models writes it, pushes and chats; another model's is
still refused. qai-hub-models' export writes its own genie_config.json with ``n-vocab`` =
the Hugging Face ``vocab_size`` and the model's own ``bos-token``
(qai_hub_models/utils/llm_helpers.py ``create_genie_config``); for Qwen2.5-7B-Instruct that
is n-vocab 152064, bos 151643, eos 151645, parts ``qwen2_5_7b_instruct_part_N_of_6.bin``.
The configs below are written out by hand in that shape.

Failure modes:
- the export's own config is judged by the tutorial's constants (n-vocab 131072) and refused;
- a config whose EOS is another model's is accepted;
- an n-vocab too small for the model's tokenizer (or below its own EOS id) is accepted;
- an export whose parts are named after another model is accepted;
- the shipped Qwen2.5 config keeps an n-vocab below its own EOS id.
"""

from __future__ import annotations

import json

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

PARTS = [f"qwen2_5_7b_instruct_part_{i}_of_6.bin" for i in range(1, 7)]


def hub_models_config(parts: list[str], n_vocab: int = 152064, eos=151645, bos=151643) -> dict:
    """genie_config.json as llm_helpers.create_genie_config writes it for Qwen2.5-7B."""
    return {
        "dialog": {
            "version": 1,
            "type": "basic",
            "context": {"version": 1, "size": 4096, "n-vocab": n_vocab, "bos-token": bos,
                        "eos-token": eos},
            "sampler": {"version": 1, "seed": 42, "temp": 0.8, "top-k": 40, "top-p": 0.95},
            "tokenizer": {"version": 1, "path": "tokenizer.json"},
            "engine": {
                "version": 1,
                "n-threads": 3,
                "backend": {
                    "version": 1,
                    "type": "QnnHtp",
                    "QnnHtp": {"version": 1, "use-mmap": True, "spill-fill-bufsize": 0,
                               "mmap-budget": 0, "poll": True, "cpu-mask": "0xe0",
                               "kv-dim": 128, "pos-id-dim": 64, "allow-async-init": False,
                               "rope-theta": 1000000},
                    "extensions": "htp_backend_ext_config.json",
                },
                "model": {"version": 1, "type": "binary",
                          "binary": {"version": 1, "ctx-bins": parts}},
            },
        }
    }  # fmt: skip


@pytest.fixture(scope="module")
def qwen25_export(tmp_path_factory):
    from qwenchat.emulator.bundle import make_bundle

    made = make_bundle(tmp_path_factory.mktemp("q25"), bin_size_mb=0.25,
                       model="qwen2.5-7b-instruct")  # fmt: skip
    assert sorted(p.name for p in made.ctx_bins) == sorted(PARTS)
    return made


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _with_config(made, config: dict) -> str:
    (made.bundle / "genie_config.json").write_text(json.dumps(config, indent=4))
    return str(made.bundle)


def test_qwen25_own_export_pushes_and_chats(qwen25_export, emulator_factory, adb_key, capsys):
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.02, jitter=False)
    where = ["--connect", emu.address, "--transport", "direct"]
    bundle = _with_config(qwen25_export, hub_models_config(PARTS))
    code, out, err = _cli(capsys, "push-assets", "--bundle", bundle, "--qairt",
                          str(qwen25_export.qairt), "--model", "qwen2.5-7b-instruct", *where)
    assert code == 0, err
    pushed = json.loads((emu.config.fs_root / "data/local/tmp/qwenchat/bundle/genie_config.json")
                        .read_text())  # fmt: skip
    assert pushed["dialog"]["context"]["n-vocab"] == 152064
    assert pushed["dialog"]["context"]["bos-token"] == 151643  # the export's own, kept
    code, out, err = _cli(capsys, "run", *where, "--max-tokens", "8", "--json", "Hello there")
    assert code == 0, err
    assert json.loads(out)["reply"]


@pytest.mark.parametrize(
    ("name", "config", "model", "message"),
    [
        ("llama-eos", hub_models_config(PARTS, n_vocab=32000, eos=2, bos=1), None,
         "genie_config.json is for another model: eos [2]; Qwen2.5-7B-Instruct ends a turn "
         "with <|im_end|> = [151645]"),
        ("tutorial-n-vocab", hub_models_config(PARTS, n_vocab=131072), None,
         "genie_config.json is for another model: n-vocab 131072 cannot hold "
         "Qwen2.5-7B-Instruct's 151,665 token ids nor its eos 151645"),
        ("qwen2-parts", hub_models_config(
            [f"qwen2_7b_instruct_part_{i}_of_6.bin" for i in range(1, 7)]), None,
         "genie_config.json lists the parts of qwen2_7b_instruct, not Qwen2.5-7B-Instruct's "
         "(qwen2_5_7b_instruct_part_N_of_M.bin)"),
        ("as-llama", hub_models_config(PARTS), "llama-v2-7b-chat",
         "genie_config.json is for another model: eos [151645]; Llama-v2-7B-Chat ends a turn "
         "with </s> = [2]"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "",
)
def test_another_models_config_is_refused(qwen25_export, tmp_path, name, config, model, message):
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.errors import BundleError

    folder = tmp_path / name
    folder.mkdir()
    for part in qwen25_export.ctx_bins:
        (folder / part.name).symlink_to(part)
    (folder / "tokenizer.json").symlink_to(qwen25_export.tokenizer)
    (folder / "genie_config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError) as caught:
        plan_bundle(folder, qwen25_export.qairt, "SM8750",
                    model=model or "qwen2.5-7b-instruct")  # fmt: skip
    assert str(caught.value.message) == f"{folder}/{message}"


def test_shipped_configs_hold_their_tokenizer_and_eos():
    """Each shipped config's n-vocab is the model's vocab_size (Hugging Face config.json, as
    llm_helpers writes it), written out here by hand."""
    from qwenchat.genie.config import genie_configs_dir

    want = {"qwen2_7b_instruct.json": 152064, "qwen2_5_7b_instruct.json": 152064,
            "llama_v2_7b_chat.json": 32000, "baichuan2_7b.json": 125696}  # fmt: skip
    for name, n_vocab in want.items():
        context = json.loads((genie_configs_dir() / name).read_text())["dialog"]["context"]
        assert context["n-vocab"] == n_vocab, name
        assert context["eos-token"] < n_vocab, name
