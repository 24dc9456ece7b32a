"""The mutation driver's own choices (scripts/mutation/run.py): which tests judge a mutant,
and which mutants an equivalent.toml entry takes out of the score. Expected line sets and
test orders are written by hand from the small module below."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "mutation_run", REPO / "scripts" / "mutation" / "run.py"
)
run = importlib.util.module_from_spec(_spec)
sys.modules["mutation_run"] = run  # dataclasses look their module up by name
_spec.loader.exec_module(run)

MODULE = textwrap.dedent('''\
    LIMIT = 3


    def clip(x, *, top=LIMIT):
        return min(x, top)


    @decorate
    def double(x):
        y = x * 2
        return y


    class Box:
        size: int = 1

        def grow(self):
            return self.size + LIMIT


    def make():
        return Box()
    ''')


@pytest.fixture
def tree(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.setattr(run, "REPO", tmp_path)
    return tmp_path


def test_an_import_time_line_is_scoped_to_what_it_defines(tree):
    scopes = run.Scopes()
    assert scopes.of("m.py", 4) == ("def clip", {5})  # signature and default
    assert scopes.of("m.py", 8) == ("def double", {10, 11})  # decorator
    assert scopes.of("m.py", 1) == ("LIMIT", {4, 18})  # the lines that read the constant
    # A class field: the class's methods and the lines that name the class.
    assert scopes.of("m.py", 15) == ("class Box", {18, 22})
    # A line inside a body runs when called: coverage sees it, no scope is made up;
    # a method's body too, not its class's.
    assert scopes.of("m.py", 10) is None
    assert scopes.of("m.py", 18) is None
    assert scopes.of("m.py", 17) == ("def grow", {18})


def _maps(lines: dict[int, list[str]], durations: dict[str, float], failed=()) -> dict:
    return {"tests/t.py": {"seconds": 9.0, "lines": {"m.py": lines},
                           "durations": durations, "failed": set(failed)}}


def _mutant(line: int) -> run.Mutant:
    return run.Mutant("p", "m.py", "core/NumberReplacer", 0, line, 0, line, ("tests/t.py",))


def test_a_covered_line_runs_its_own_tests_fastest_first_without_failing_ones(tree):
    maps = _maps({10: ["t::slow", "t::fast", "t::broken"]},
                 {"t::slow": 5.0, "t::fast": 0.1, "t::broken": 0.01, "t::other": 0.2},
                 failed=["t::broken"])
    m = _mutant(10)
    assert run.select_tests(m, maps, run.Scopes())
    assert m.run_tests == ("t::fast", "t::slow") and m.covered and not m.fallback


def test_an_uncovered_signature_runs_the_body_tests_first_then_the_rest(tree):
    maps = _maps({5: ["t::b"], 10: ["t::c"]}, {"t::a": 0.3, "t::b": 0.2, "t::c": 0.1})
    m = _mutant(4)
    assert run.select_tests(m, maps, run.Scopes())
    assert not m.covered and m.scope == "def clip"
    assert m.run_tests == ("t::b",)
    assert m.fallback == ("t::c", "t::a")  # every other test, fastest first


def test_an_uncovered_line_without_a_scope_runs_the_whole_selection(tree):
    maps = _maps({5: ["t::b"]}, {"t::a": 0.3, "t::b": 0.2})
    m = _mutant(10)  # inside a body, yet no test ran it
    assert run.select_tests(m, maps, run.Scopes())
    assert m.run_tests == ("t::b", "t::a") and not m.fallback and not m.scope


def _described(path: str, line: int, original: str, mutated: str, op="core/AddNot"):
    m = run.Mutant("p", path, op, 0, line, 0, line, ())
    m.original, m.mutated = original, mutated
    return m


def test_an_entry_matches_by_line_text_mutation_operator_and_context(tree):
    entries = [{"file": "m.py", "line": "@decorate", "context": "def double",
                "operator": "RemoveDecorator", "reason": "why"}]
    hit = _described("m.py", 8, "@decorate", "", "core/RemoveDecorator")
    assert run.equivalent_reason(hit, entries) == "why"
    assert run.equivalent_reason(_described("m.py", 8, "@decorate", ""), entries) is None
    (tree / "m.py").write_text(MODULE.replace("def double", "def triple"), encoding="utf-8")
    assert run.equivalent_reason(hit, entries) is None  # another function's decorator
    only = [{"file": "m.py", "line": "x > 0", "mutation": "x >= 0", "reason": "r"}]
    assert run.equivalent_reason(_described("m.py", 1, "if x > 0:", "if x >= 0:"), only) == "r"
    assert run.equivalent_reason(_described("m.py", 1, "if x > 0:", "if x < 0:"), only) is None
    some = [{"file": "m.py", "line": "x > 0", "mutation": ["x >= 0", "x != 0"], "reason": "s"}]
    assert run.equivalent_reason(_described("m.py", 1, "if x > 0:", "if x != 0:"), some) == "s"
    assert run.equivalent_reason(_described("m.py", 1, "if x > 0:", "if x < 0:"), some) is None
