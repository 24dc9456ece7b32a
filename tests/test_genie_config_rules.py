"""genie_config.json's rules at their edges (the smallest allowed value, a section a type
needs and a type that needs none), the counted error message, and the HTP extension file's
exact rendering; expected text written by hand."""

from __future__ import annotations

import json

import pytest

from qwenchat.errors import ConfigError
from qwenchat.genie.config import parse_genie_config, parse_htp_ext_config, qwen2_genie_config


def _data():
    return qwen2_genie_config().to_json_dict()


def _parse(data):
    return parse_genie_config(json.dumps(data))


def test_smallest_allowed_counts_are_accepted_and_zero_is_not():
    d = _data()
    d["dialog"]["max-num-tokens"] = 1
    d["dialog"]["context"]["n-vocab"] = 1
    config = _parse(d)
    assert config.max_num_tokens == 1
    for key, where in (("max-num-tokens", "dialog.max-num-tokens"),):
        d = _data()
        d["dialog"][key] = 0
        with pytest.raises(ConfigError, match=where):
            _parse(d)
    d = _data()
    d["dialog"]["context"]["n-vocab"] = 0
    with pytest.raises(ConfigError, match="dialog.context.n-vocab"):
        _parse(d)


@pytest.mark.parametrize("kind", ["alpha", "zeta", "QnnGpu"])
def test_only_the_qnnhtp_backend_needs_a_qnnhtp_section(kind):
    d = _data()
    d["dialog"]["engine"]["backend"]["type"] = kind
    d["dialog"]["engine"]["backend"].pop("QnnHtp")
    assert _parse(d).dialog.engine.backend.type == kind


def test_the_qnnhtp_backend_without_its_section_is_refused():
    d = _data()
    d["dialog"]["engine"]["backend"].pop("QnnHtp")
    with pytest.raises(ConfigError, match='backend type "QnnHtp" needs a "QnnHtp" section'):
        _parse(d)


@pytest.mark.parametrize("kind", ["alpha", "library", "zeta"])
def test_only_a_binary_model_needs_a_binary_section(kind):
    d = _data()
    d["dialog"]["engine"]["model"]["type"] = kind
    d["dialog"]["engine"]["model"].pop("binary")
    config = _parse(d)
    with pytest.raises(ConfigError, match="has no binary.ctx-bins"):
        config.ctx_bins  # noqa: B018


def test_a_binary_model_without_its_section_is_refused():
    d = _data()
    d["dialog"]["engine"]["model"].pop("binary")
    with pytest.raises(ConfigError, match='model type "binary" needs a "binary" section'):
        _parse(d)


def test_error_message_counts_the_other_problems():
    d = _data()
    d["dialog"]["context"]["size"] = "x"
    d["dialog"]["context"]["n-vocab"] = "y"
    with pytest.raises(ConfigError) as info:
        _parse(d)
    assert str(info.value).endswith("(and 1 more problem)")
    d["dialog"]["engine"]["n-threads"] = "z"
    with pytest.raises(ConfigError) as info:
        _parse(d)
    assert str(info.value).endswith("(and 2 more problems)")


def test_eos_is_always_a_list_and_no_stop_sequence_is_empty():
    d = _data()
    d["dialog"]["context"]["eos-token"] = 7
    d["dialog"].pop("stop-sequence", None)
    config = _parse(d)
    assert config.eos_tokens == [7] and config.stop_sequence == []
    d["dialog"]["context"]["eos-token"] = [7, 8]
    d["dialog"]["stop-sequence"] = ["<|im_end|>"]
    config = _parse(d)
    assert config.eos_tokens == [7, 8] and config.stop_sequence == ["<|im_end|>"]


def test_config_text_ends_with_a_newline_and_keeps_non_ascii():
    d = _data()
    d["dialog"]["stop-sequence"] = ["fin é"]
    text = _parse(d).render()
    assert text.endswith("}\n") and "fin é" in text and text.startswith('{\n  "dialog": {\n    ')


def test_invalid_json_names_line_and_column():
    with pytest.raises(ConfigError) as info:
        parse_genie_config('{\n  "dialog": ,\n}', source="x.json")
    assert str(info.value).startswith("x.json: invalid JSON at line 2, column 13: ")


def test_htp_extension_file_renders_exactly_and_reads_its_first_device():
    ext = parse_htp_ext_config(json.dumps({"devices": [
        {"soc_model": 69, "dsp_arch": "v79", "cores": [{"core_id": 0, "perf_profile": "burst"}]},
        {"soc_model": 57, "dsp_arch": "v75", "cores": [{"core_id": 1, "perf_profile": "x"}]},
    ]}))
    assert (ext.soc_model, ext.dsp_arch) == (69, "v79")
    one = parse_htp_ext_config('{"devices": [{"soc_model": 69, "dsp_arch": "v79", '
                               '"cores": [{"core_id": 0, "perf_profile": "burst"}]}]}')
    assert one.render() == (
        '{\n  "devices": [\n    {\n      "soc_model": 69,\n      "dsp_arch": "v79",\n'
        '      "cores": [\n        {\n          "core_id": 0,\n'
        '          "perf_profile": "burst"\n        }\n      ]\n    }\n  ]\n}\n'
    )


def test_an_installed_package_reads_its_shipped_configs(monkeypatch, tmp_path):
    from qwenchat.genie import config

    monkeypatch.setattr(config, "_REPO_CONFIGS", tmp_path / "not-a-checkout")
    shipped = config.genie_configs_dir()
    assert shipped.parts[-2:] == ("data", "genie_configs")
    assert (shipped / "qwen2_7b_instruct.json").is_file()
    assert config.qwen2_genie_config().context_size == 4096
