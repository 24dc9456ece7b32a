"""The layering rule holds, and `make lint` would catch a break of it.

The contracts live in pyproject.toml ([tool.importlinter], [tool.mypy]). Each case below plants
one wrong import, or one type error, in a copy of the package and checks that the checker names
it, so the contracts cannot silently stop guarding anything.

Failure modes covered:
- a layer importing upward, a feature importing a sibling or the HTTP front door;
- the product importing the emulated phone, from a feature or from a neutral module
  (manifest, signals...);
- the emulated phone importing the product, a neutral module included (errors, paths,
  manifest, signals, models);
- a new top-level module left out of the emulator's contracts (the lists are hand-written);
- a type error in product code, an untyped function in a module held to --strict;
- the type checker's exemptions hiding a module they should not (the emulator is the only
  package mypy skips, besides the few modules pyproject lists with its reason);
- CI not running the lint (types, contracts) before the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


def test_the_real_tree_keeps_every_contract():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken"),
    [
        ("genie/events.py", "import qwenchat.device.base", "layers"),
        ("device/base.py", "import qwenchat.genie.stream", "layers"),
        ("runner/record.py", "import qwenchat.chat.session", "layers"),
        ("bench/stats.py", "import qwenchat.chat.storage", "layers"),
        # serve/ is a front door: a feature importing it breaks the layers.
        ("chat/session.py", "import qwenchat.serve.pool", "layers"),
        ("chat/render.py", "import qwenchat.emulator.config", "the product never imports"),
        ("emulator/props.py", "import qwenchat.device.base", "the emulated phone knows only"),
        # The neutral modules: the emulated phone has its own copy of every fact it needs.
        ("emulator/props.py", "import qwenchat.errors", "the emulated phone knows only"),
        ("emulator/daemon.py", "import qwenchat.paths", "the emulated phone knows only"),
        ("emulator/storage.py", "import qwenchat.manifest", "the emulated phone knows only"),
        ("emulator/phone.py", "import qwenchat.signals", "the emulated phone knows only"),
        ("emulator/genie_sim/tokenizer.py", "import qwenchat.models.spec", "the emulated phone knows only"),
        ("manifest.py", "import qwenchat.emulator.hashsum", "the product never imports"),
        ("signals.py", "import qwenchat.emulator.config", "the product never imports"),
    ],
)
def test_a_wrong_import_breaks_the_build(tmp_path, module, wrong_import, broken):
    shutil.copytree(REPO / "qwenchat", tmp_path / "qwenchat",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "qwenchat" / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # planted by the test\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section
    assert wrong_import.split()[-1].rsplit(".", 1)[0] in broken_section


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _top_level_modules() -> set[str]:
    """qwenchat's top-level packages and modules, from the directory itself (not the config)."""
    found = set()
    for entry in (REPO / "qwenchat").iterdir():
        if entry.name.startswith(("_", ".")) or entry.name == "emulator":
            continue
        if entry.is_dir() and (entry / "__init__.py").exists():
            found.add(f"qwenchat.{entry.name}")
        elif entry.suffix == ".py":
            found.add(f"qwenchat.{entry.stem}")
    return found


def test_the_emulator_contracts_name_every_module_of_the_product():
    modules = _top_level_modules()
    assert {"qwenchat.errors", "qwenchat.paths", "qwenchat.signals", "qwenchat.manifest"} <= modules
    contracts = _contracts()
    product = next(c for n, c in contracts.items() if n.startswith("the product never imports"))
    emulator = next(c for n, c in contracts.items() if n.startswith("the emulated phone knows"))
    # The CLI is the one module allowed to import the emulated phone (`qwenchat emulator`).
    assert modules - {"qwenchat.cli"} - set(product["source_modules"]) == set()
    assert modules - set(emulator["forbidden_modules"]) == set()


# ----- the type checker

MYPY = Path(sys.executable).with_name("mypy")


def _mypy(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MYPY), "--config-file", str(root / "pyproject.toml")],
        cwd=root, capture_output=True, text=True, timeout=600,
    )


def _planted_copy(tmp_path: Path, module: str, code: str) -> Path:
    shutil.copytree(REPO / "qwenchat", tmp_path / "qwenchat",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    if (REPO / ".mypy_cache").is_dir():  # only speed: mypy re-checks what changed
        shutil.copytree(REPO / ".mypy_cache", tmp_path / ".mypy_cache")
    target = tmp_path / "qwenchat" / module
    target.write_text(target.read_text() + f"\n\n{code}  # planted by the test\n")
    return target


@pytest.mark.slow
@pytest.mark.skipif(not MYPY.exists(), reason="mypy not installed")
@pytest.mark.parametrize(
    ("module", "code", "caught"),
    [
        # A wrong type anywhere in the product (even in a module not yet strict).
        ("chat/outcome.py", "WRONG: int = 'text'", "Incompatible types in assignment"),
        ("bench/trial.py", "WRONG: int = 'text'", "Incompatible types in assignment"),
        # An untyped def in a strict module (runner/record.py is strict).
        ("runner/record.py", "def planted(x):\n    return x", "missing a type annotation"),
        ("genie/events.py", "def planted(x):\n    return x", "missing a type annotation"),
    ],
)
def test_a_type_error_breaks_the_build(tmp_path, module, code, caught):
    _planted_copy(tmp_path, module, code)
    result = _mypy(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert f"qwenchat/{module}" in result.stdout
    assert caught in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not MYPY.exists(), reason="mypy not installed")
def test_the_type_checker_skips_only_the_emulator_and_what_pyproject_lists(tmp_path):
    """A type error in the emulated phone is not the product's: mypy passes; the same error
    in a module pyproject does not exempt fails (the exemption is not a blanket)."""
    _planted_copy(tmp_path, "emulator/props.py", "WRONG: int = 'text'")
    assert _mypy(tmp_path).returncode == 0
    _planted_copy(tmp_path / "again", "device/endpoints.py", "WRONG: int = 'text'")
    result = _mypy(tmp_path / "again")
    assert result.returncode != 0
    assert "qwenchat/device/endpoints.py" in result.stdout


def test_ci_runs_the_lint_before_the_tests_and_the_lint_runs_the_checkers():
    steps = [
        line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert steps == ["make lint", "make test"]
    makefile = (REPO / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    for tool in ("ruff check", "lint-imports", "mypy"):
        assert f"$(BIN)/{tool}" in lint


def test_no_emulator_marker_in_product_code():
    """The product never recognises the emulated phone by its output: the emulated genies
    write their notice only to a terminal, so nothing filters ``[SIMULATED]`` lines."""
    offenders = []
    for path in (REPO / "qwenchat").rglob("*.py"):
        if "emulator" in path.relative_to(REPO / "qwenchat").parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "[SIMULATED]" in line or "qwenchat emulator (no model" in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert offenders == []


def test_callers_ask_the_engine_its_capabilities_not_its_name():
    """`engine.name == "session"` was how callers guessed what an engine can do; Engine now
    says it (keeps_model_loaded, can_abort, sampler_per_query, libgenie_version)."""
    import re

    guess = re.compile(r"""\.name\s*[!=]=\s*["'](session|process)["']""")
    offenders = []
    for path in (REPO / "qwenchat").rglob("*.py"):
        if "emulator" in path.relative_to(REPO / "qwenchat").parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if guess.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
