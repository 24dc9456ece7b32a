"""Every model end to end on the emulated phone: a bundle shaped as its real export, pushed
with --model, a chat reply, a bench run that names the model and its published figures, and
another model refused before Genie runs. Expected values are written by hand."""

from __future__ import annotations

import json

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

# model -> (part names of the export, context, published decode tok/s)
MODELS = {
    "qwen2.5-7b-instruct": ([f"qwen2_5_7b_instruct_part_{i}_of_6.bin" for i in range(1, 7)], 4096, 15.40274),
    "llama-v2-7b-chat": ([f"Llama2_Part{i}_Quantized.bin" for i in range(1, 5)], 1024, 17.94),
    "baichuan2-7b": ([f"weight_sharing_model_{i}_of_5.serialized.bin" for i in range(1, 6)], 4096, 7.72),
}


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("model", list(MODELS))
def test_a_model_end_to_end(model, emulator_factory, adb_key, tmp_path, capsys):
    from qwenchat.emulator.bundle import make_bundle

    parts, context, decode = MODELS[model]
    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.02, jitter=False)
    made = make_bundle(tmp_path / "b", bin_size_mb=0.25, model=model)
    assert sorted(p.name for p in made.ctx_bins) == sorted(parts)
    where = ["--connect", emu.address, "--transport", "direct"]
    code, out, err = _cli(capsys, "push-assets", "--bundle", str(made.bundle), "--qairt",
                          str(made.qairt), "--model", model, *where, "--json")
    assert code == 0, err
    code, out, err = _cli(capsys, "run", *where, "--max-tokens", "8", "--json", "Hello there")
    assert code == 0, err
    reply = json.loads(out)
    assert reply["reply"] and reply["figures"]["context"]["size"] == context
    code, out, err = _cli(capsys, "bench", *where, "-p", "128", "-r", "1", "--warmup", "0",
                          "--gen-len", "4", "--cooldown", "0", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == model
    assert report["published"]["decode_tok_s"] == decode
    code, out, err = _cli(capsys, "run", *where, "--model", "qwen2-7b-instruct", "Hi")
    assert code != 0 and err.startswith("error: the phone holds ")
