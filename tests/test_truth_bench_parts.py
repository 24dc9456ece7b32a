"""`bench --method parts` (issue #28 item 4's measurement): without a Qualcomm source for how
qnn-net-run runs one graph of a weight-shared context binary and for the parts' inputs, it
refuses in one line before the phone or the store is touched, and shows no number; the
README's VERIFIED / INFERRED / MISSING table is the one the code holds.

Failure modes: the method runs (and would show simulated NPU times as measurements); the
refusal is more than one line or a traceback; an unknown method is not a usage error; the
README's table drifts from the facts the code states.
"""

from __future__ import annotations

from pathlib import Path

from qwenchat.bench.parts import facts_table
from qwenchat.cli import app
from qwenchat.cli.errors import run_app


def test_parts_refuses_in_one_line_and_shows_no_number(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    # No phone is given or reachable: a refusal that came after asking one would say so.
    code = run_app(app, ["bench", "--method", "parts", "--connect", "127.0.0.1:9"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    first, hint = err.splitlines()
    assert first == (
        "error: bench --method parts is not available: no Qualcomm source read says how "
        "qnn-net-run runs one graph (ar128 or ar1) of a weight-shared context binary, nor "
        "gives the parts' input tensors"
    )
    assert hint.startswith("hint: ") and "README" in hint


def test_an_unknown_method_is_a_usage_error(capsys):
    assert run_app(app, ["bench", "--method", "npu"]) == 2
    assert "error: --method 'npu': must be one of genie, parts" in capsys.readouterr().err


def test_the_readme_table_is_the_codes():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert facts_table() in readme
    assert "| MISSING |" in facts_table() and "| VERIFIED |" in facts_table()
