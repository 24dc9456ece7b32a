"""Startup cost of the CLI: `qwenchat --help` and `qwenchat run --help`.

Target: under 0.25 s on this machine, and none of transformers, tokenizers, pydantic or
matplotlib imported (they cost seconds; only the commands that use them may import them).
Measured with `python -X importtime` (what gets imported, self and cumulative µs) and the
wall clock of the whole process (median of several runs).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

TARGET_S = 0.25
HEAVY = ("transformers", "tokenizers", "pydantic", "matplotlib", "adb_shell", "adbutils")
COMMANDS = (["--help"], ["run", "--help"], ["bench", "--help"])


def _imports(args: list[str]) -> tuple[set[str], float]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qwenchat", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    modules: set[str] = set()
    total_us = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        head, cumulative, name = line.split("|")
        modules.add(name.strip())
        # Nesting is shown by indentation after one space: a top-level import's cumulative
        # time already includes its children, so only those are added up.
        if not name[1:].startswith(" "):
            total_us += int(cumulative)
    return modules, total_us / 1e6


def _wall(args: list[str], runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qwenchat", *args], capture_output=True, check=False)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _wall_of(code: list[str], runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *code], capture_output=True, check=False)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> dict:
    # An installed package has its bytecode compiled; this environment may set
    # PYTHONDONTWRITEBYTECODE, which would otherwise make every run compile qwenchat again.
    import compileall
    from pathlib import Path

    import qwenchat

    compileall.compile_dir(Path(qwenchat.__file__).parent, quiet=1)
    python_s = _wall_of(["-c", "pass"])
    typer_s = _wall_of(["-c", "import typer"])
    print(
        f"  baseline (same run): python -c pass {python_s * 1000:.1f} ms, "
        f"import typer {typer_s * 1000:.1f} ms (host clock, median of 7)"
    )
    results: dict = {"python_ms": round(python_s * 1000, 1), "typer_ms": round(typer_s * 1000, 1)}
    for args in COMMANDS:
        label = "qwenchat " + " ".join(args)
        modules, import_s = _imports(args)
        heavy = sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})
        wall = _wall(args)
        ok = wall < TARGET_S and not heavy
        print(
            f"  {label:24s} wall {wall * 1000:6.1f} ms (median of 7, host clock; "
            f"{(wall - typer_s) * 1000:+.0f} ms over importing typer)  "
            f"imports {import_s * 1000:6.1f} ms  heavy imports: {', '.join(heavy) or 'none'}  "
            f"target < {TARGET_S * 1000:.0f} ms: {'met' if ok else 'NOT MET'}"
        )
        results[label] = {
            "wall_ms": round(wall * 1000, 1),
            "import_ms": round(import_s * 1000, 1),
            "heavy_imports": heavy,
            "target_ms": TARGET_S * 1000,
            "met": ok,
        }
    return results


if __name__ == "__main__":
    main()
