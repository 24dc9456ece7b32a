"""The README's example output is produced by running the commands; it must match the tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_readme_opens_with_the_two_commands():
    head = (REPO / "README.md").read_text().splitlines()[:8]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_readme_examples_match_what_the_tool_prints():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "readme_examples.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mask_keeps_words_and_drops_numbers():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from readme_examples import mask
    finally:
        sys.path.pop(0)
    assert mask("TTFT 17.2 ms ┃ 1,024 tok") == mask("TTFT 171.9 ms ┃ 128 tok")
    assert mask("stop: eos") != mask("stop: max_tokens")
    assert mask("run 20261123-115005-37a354 · load 907 ms") == mask("run 20261124-090001-bdf0a1 · load 1.0 s")
