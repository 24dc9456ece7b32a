"""The layering rule holds, and `make lint` would catch a break of it.

The contracts live in pyproject.toml ([tool.importlinter]). Each case below plants one wrong
import in a copy of the package and checks that import-linter names the broken contract, so
the contracts cannot silently stop guarding anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
