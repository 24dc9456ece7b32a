"""Run every benchmark (or the ones named): `python -m benchmarks [name ...]`.

Results of the run are written to out/bench.json as well as printed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

ORDER = (
    "startup",
    "emulator_speed",
    "device_speed",
    "push_speed",
    "oneshot",
    "chat_overhead",
    "session_chat",
    "serve_overhead",
    "bench_accuracy",
    "fleet",
)


def main(argv: list[str]) -> int:
    names = argv or list(ORDER)
    results: dict[str, object] = {}
    failed = []
    for name in names:
        module_name = f"benchmarks.{name}"
        if importlib.util.find_spec(module_name) is None:
            print(f"\n== {name}: not present in this checkout, skipped")
            results[name] = {"skipped": "module not present"}
            continue
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        try:
            results[name] = importlib.import_module(module_name).main()
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        print(f"   ({time.perf_counter() - started:.1f} s)")
    out = Path("out")
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults written to {out / 'bench.json'}")
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
