"""Small things met as a new user (issue #28, item 8).

Failure modes:
- `replay FILE` refuses a `doctor --report FILE` report because FILE does not end in .json
  (a report is known by its "format", whatever its name);
- `qwenchat models` at 80 columns breaks a model id or an AI Hub id across lines (ids are
  what people copy);
- the top-level --help and the chat package still say Qwen2-7B-Instruct only.
"""

from __future__ import annotations

import json

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.models.registry import MODELS


def test_replay_reads_a_doctor_report_whatever_its_name(bundled_phone, capsys, tmp_path):
    emu, _ = bundled_phone()
    path = tmp_path / "phone-report.txt"
    code = run_app(app, ["doctor", "--connect", emu.address, "--transport", "direct",
                         "--report", str(path)])  # fmt: skip
    assert code == 0 and path.is_file()
    capsys.readouterr()
    assert run_app(app, ["replay", str(path), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    probe = json.loads(path.read_text())["probe"]
    begin = probe["stdout"].index("[BEGIN]: ") + len("[BEGIN]: ")
    assert replayed["reply"] == probe["stdout"][begin : probe["stdout"].index("[END]")]
    assert replayed["outcome"] == "finished"
    # Not a report (other JSON, any name): still "neither a report nor a capture".
    other = tmp_path / "notes.txt"
    other.write_text('{"format": "something-else"}')
    assert run_app(app, ["replay", str(other)]) == 2
    assert "neither a `qwenchat doctor --report` file nor a capture" in capsys.readouterr().err


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_models_never_breaks_an_id(monkeypatch, capsys, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert run_app(app, ["models", "--no-phone"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= columns
    for spec in MODELS:
        for ident in (spec.name, spec.hub.model_id):
            assert any(ident in line for line in lines), (ident, columns)


def test_help_and_chat_package_name_every_model_not_only_qwen2(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert run_app(app, ["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Chat with and benchmark LLMs (Qwen2-7B-Instruct by default; `qwenchat models` " \
           "lists the others)" in text
    import qwenchat.chat

    doc = " ".join(qwenchat.chat.__doc__.split())
    for spec in MODELS:
        assert spec.display_name in doc, spec.display_name
