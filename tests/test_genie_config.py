"""genie_config.json / htp_backend_ext_config.json models, shipped configs, SoC table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qwenchat.errors import ConfigError
from qwenchat.genie.config import (
    genie_configs_dir,
    htp_ext_config_for_soc,
    load_genie_config,
    load_htp_ext_config,
    parse_genie_config,
    qwen2_genie_config,
)
from qwenchat.soc import SUPPORTED_SOCS, soc_info

REPO = Path(__file__).resolve().parent.parent


def _tutorial() -> dict:
    return json.loads((REPO / "genie_configs" / "qwen2_7b_instruct.json").read_text())


def _write(tmp_path: Path, data, name="genie_config.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def test_shipped_qwen2_config_matches_the_tutorial_values():
    c = qwen2_genie_config()
    assert c.context_size == 4096
    assert c.dialog.context.n_vocab == 152064
    assert c.bos_token == -1
    assert c.eos_tokens == [151645]
    assert c.max_num_tokens is None and c.stop_sequence == []
    assert c.tokenizer_path == "tokenizer.json"
    assert c.ctx_bins == [f"weight_sharing_model_{i}_of_4.serialized.bin" for i in (1, 2, 3, 4)]
    htp = c.dialog.engine.backend.qnn_htp
    assert htp is not None and htp.cpu_mask == "0xe0" and htp.poll is False
    assert c.dialog.engine.backend.extensions == "htp_backend_ext_config.json"


def test_render_is_the_file_byte_for_byte():
    path = REPO / "genie_configs" / "qwen2_7b_instruct.json"
    assert load_genie_config(path).render() == path.read_text()


def test_unknown_keys_survive_a_round_trip(tmp_path):
    data = _tutorial()
    data["dialog"]["future-key"] = {"x": [1, 2]}
    data["dialog"]["engine"]["backend"]["QnnHtp"]["new-htp-knob"] = 7
    data["dialog"]["context"]["eos-token"] = [151645, 151643]
    data["dialog"]["engine"]["model"]["positional-encoding"] = {"type": "rope", "rope-dim": 64}
    c = load_genie_config(_write(tmp_path, data))
    assert json.loads(c.render()) == data
    assert c.eos_tokens == [151645, 151643]


def test_render_does_not_invent_keys():
    rendered = json.loads(qwen2_genie_config().render())
    assert "max-num-tokens" not in rendered["dialog"]
    assert "stop-sequence" not in rendered["dialog"]
    assert "positional-encoding" not in rendered["dialog"]["engine"]["model"]


def test_with_overrides_returns_a_modified_copy():
    base = qwen2_genie_config()
    c = base.with_overrides(
        context_size=2048, max_num_tokens=128, temp=0.0, top_k=1, top_p=1.0, seed=7
    )
    d = json.loads(c.render())["dialog"]
    assert d["max-num-tokens"] == 128 and c.max_num_tokens == 128
    assert d["context"]["size"] == 2048
    assert d["sampler"] == {"version": 1, "seed": 7, "temp": 0.0, "top-k": 1, "top-p": 1.0}
    assert base.max_num_tokens is None and base.context_size == 4096  # untouched
    assert base.with_overrides().render() == base.render()


def test_with_overrides_validates():
    with pytest.raises(ConfigError, match="max-num-tokens"):
        qwen2_genie_config().with_overrides(max_num_tokens=0)
    with pytest.raises(ConfigError, match="top-p"):
        qwen2_genie_config().with_overrides(top_p=1.5)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["dialog"]["context"].__setitem__("size", "big"), "dialog.context.size"),
        (lambda d: d["dialog"]["context"].pop("eos-token"), "dialog.context.eos-token"),
        (lambda d: d["dialog"]["engine"]["backend"]["QnnHtp"].pop("cpu-mask"), "QnnHtp.cpu-mask"),
        (lambda d: d["dialog"]["engine"]["backend"]["QnnHtp"].pop("poll"), "QnnHtp.poll"),
        (lambda d: d["dialog"]["engine"]["backend"].pop("QnnHtp"), "dialog.engine.backend"),
        (
            lambda d: d["dialog"]["engine"]["model"]["binary"].__setitem__("ctx-bins", []),
            "ctx-bins",
        ),
        (lambda d: d["dialog"].pop("tokenizer"), "dialog.tokenizer"),
    ],
)
def test_validation_errors_name_file_and_field(tmp_path, mutate, field):
    data = _tutorial()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_genie_config(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert field in str(exc.value)
    assert exc.value.hint


def test_error_message_format():
    data = _tutorial()
    data["dialog"]["context"]["size"] = "x"
    with pytest.raises(ConfigError) as exc:
        parse_genie_config(json.dumps(data))
    assert str(exc.value).startswith(
        "genie_config.json: dialog.context.size: Input should be a valid integer"
    )


def test_json_syntax_error_gives_line(tmp_path):
    path = _write(tmp_path, '{\n  "dialog": {\n    "version": 1,\n  }\n}\n')
    with pytest.raises(ConfigError, match=r"genie_config\.json: invalid JSON at line 4"):
        load_genie_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_genie_config(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("soc", "soc_model", "arch"),
    [("SM8550", 43, "v73"), ("SM8650", 57, "v75"), ("SM8750", 69, "v79"), ("SC8380", 60, "v73")],
)
def test_htp_ext_config_per_soc(soc, soc_model, arch):
    info = soc_info(soc)
    assert (info.soc_model, info.dsp_arch) == (soc_model, arch)
    ext = htp_ext_config_for_soc(soc)
    assert (ext.soc_model, ext.dsp_arch) == (soc_model, arch)
    rendered = json.loads(ext.render())
    assert rendered["devices"][0]["cores"][0] == {
        "core_id": 0,
        "perf_profile": "burst",
        "rpc_control_latency": 100,
    }
    assert rendered["memory"] == {"mem_type": "shared_buffer"}
    assert rendered["context"] == {"weight_sharing_enabled": True}


def test_htp_ext_keeps_unknown_keys(tmp_path):
    data = json.loads((genie_configs_dir() / "htp_backend_ext_config_v79.json").read_text())
    data["devices"][0]["cores"][0]["hmx_enabled"] = True
    data["graphs"] = [{"graph_names": ["a"], "vtcm_mb": 8}]
    ext = load_htp_ext_config(_write(tmp_path, data, "htp.json"))
    assert json.loads(ext.render()) == data


def test_unknown_soc_lists_supported():
    with pytest.raises(ConfigError) as exc:
        soc_info("SM8450")
    for soc in SUPPORTED_SOCS:
        assert soc in str(exc.value)
    assert soc_info(" sm8750 ").soc == "SM8750"


def test_package_data_link_points_at_the_same_files():
    shipped = REPO / "qwenchat" / "data" / "genie_configs"
    assert shipped.is_symlink()
    assert sorted(p.name for p in shipped.iterdir()) == sorted(
        p.name for p in (REPO / "genie_configs").iterdir()
    )


def test_config_models_are_not_imported_by_the_package():
    code = "import sys, qwenchat.genie; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
