"""What qwenchat adds to Genie for a one-shot question and for `doctor`, seen from outside.

1. `qwenchat run --max-tokens 8 "..."` (direct transport, emulated phone at time scale 1.0,
   the default device profile: ~3 s model load), started as a new process RUNS times: host
   clock from launch to the first byte of the reply on stdout, and to the process's exit;
   compared with Genie's own load + TTFT and load + TTFT + decode time from its --profile
   (read back with `qwenchat history last --json`). Targets (issue #32): median first byte
   <= Genie's load + TTFT + 0.4 s; median wall <= Genie's total + 0.5 s.
   The simulated Genie prints its first token one decode step after the TTFT it reports (a
   real Genie hands it over at TTFT): that step is shown apart, as the emulator's.
2. `qwenchat doctor --json` on a phone already seen: wall minus the host time of its Genie
   probes (genie-t2t-run and genie-app, `genie_probe_s` in its JSON) <= 1 s.

Every figure is SIMULATED (emulated phone); host clock unless said otherwise. A first run
of each (not counted) lets the host remember the phone and its tokenizer, as any later run
on a phone already seen does.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5
FIRST_BYTE_TARGET_S = 0.4
WALL_TARGET_S = 0.5
DOCTOR_TARGET_S = 1.0


def _one_run(address: str, env: dict) -> dict:
    cmd = [sys.executable, "-m", "qwenchat", "run", "--max-tokens", "8", "--connect", address,
           "--transport", "direct", "What does an NPU do?"]
    import resource

    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.monotonic()
    # cwd outside any checkout: `-m` puts the cwd first on sys.path (PYTHONPATH picks the code).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=env["QWENCHAT_HOME"])
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_at = time.monotonic()
    rest, err = proc.communicate(timeout=120)
    ended = time.monotonic()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"qwenchat run failed ({proc.returncode}): {err.decode()[-400:]}")
    out = subprocess.run(
        [sys.executable, "-m", "qwenchat", "history", "last", "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=env["QWENCHAT_HOME"],
    ).stdout
    reply = [m for m in json.loads(out)["messages"] if m["role"] == "assistant"][-1]
    genie = reply["generations"][0]["genie"]
    load_ttft = (genie["init_time_us"] + genie["time_to_first_token_us"]) / 1e6
    total = load_ttft + genie["token_generation_time_us"] / 1e6
    step = 1 / genie["token_generation_rate_tok_s"]
    return {
        "first_byte_s": round(first_at - launched, 3),
        "host_cpu_s": round(cpu, 3),
        "wall_s": round(ended - launched, 3),
        "genie_load_plus_ttft_s": round(load_ttft, 3),
        "genie_total_s": round(total, 3),
        "simulated_first_decode_step_s": round(step, 3),
        "first_byte_over_genie_s": round(first_at - launched - load_ttft, 3),
        "wall_over_genie_s": round(ended - launched - total, 3),
    }


def _doctor(address: str, env: dict) -> dict:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "qwenchat", "doctor", "--connect", address, "--transport",
         "direct", "--json"],
        env=env, capture_output=True, text=True, check=False, cwd=env["QWENCHAT_HOME"],
    )
    wall = time.monotonic() - started
    report = json.loads(proc.stdout)
    probe = report.get("genie_probe_s") or 0.0
    return {"wall_s": round(wall, 3), "genie_probe_s": probe, "own_s": round(wall - probe, 3)}


def main() -> dict:
    import compileall

    import qwenchat
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer
    from qwenchat.layout import PhoneLayout

    compileall.compile_dir(Path(qwenchat.__file__).parent, quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="qwenchat-bench-oneshot-"))
    env = dict(os.environ, QWENCHAT_HOME=str(tmp / "home"), LC_ALL="C.UTF-8")
    for home in ("home", "home-base"):
        (tmp / home).mkdir()
    bundle = make_bundle(tmp / "bundle", bin_size_mb=1, arch="v79", parts=4)
    config = EmulatorConfig(root=tmp / "phone", time_scale=1.0, jitter=False, auth=False)
    server = EmulatorServer(config, port=0)
    server.start()
    results: dict = {"simulated": True, "time_scale": 1.0, "runs": RUNS}
    try:
        with DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5) as dev:
            plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
            push_assets(dev, plan, PhoneLayout(), overlap=False)
        _one_run(server.address, env)  # the host meets the phone and its tokenizer
        # Another checkout (e.g. /work/main), measured in the same run for comparison.
        baseline = os.environ.get("QWENCHAT_BENCH_BASELINE")
        base_env = dict(env, PYTHONPATH=baseline, QWENCHAT_HOME=str(tmp / "home-base"))
        if baseline:
            _one_run(server.address, base_env)
        samples, base = [], []
        for _ in range(RUNS):  # interleaved: the machine's load falls on both alike
            samples.append(_one_run(server.address, env))
            if baseline:
                base.append(_one_run(server.address, base_env))
        if base:
            print(
                f"  baseline {baseline} (same run, interleaved): first byte over Genie "
                f"{statistics.median(s['first_byte_over_genie_s'] for s in base):+.2f} s, wall "
                f"over Genie {statistics.median(s['wall_over_genie_s'] for s in base):+.2f} s, "
                f"host CPU {statistics.median(s['host_cpu_s'] for s in base):.2f} s (medians)"
            )
            results["baseline"] = {"checkout": baseline, "samples": base}
        first_over = statistics.median(s["first_byte_over_genie_s"] for s in samples)
        wall_over = statistics.median(s["wall_over_genie_s"] for s in samples)
        step = statistics.median(s["simulated_first_decode_step_s"] for s in samples)
        print(
            f"  run (one-shot, SIMULATED, time scale 1): launch -> first reply byte on stdout "
            f"median {statistics.median(s['first_byte_s'] for s in samples):.2f} s vs Genie load+TTFT "
            f"{statistics.median(s['genie_load_plus_ttft_s'] for s in samples):.2f} s (--profile): "
            f"{first_over:+.2f} s (of which the simulated first decode step {step:.2f} s); "
            f"target <= +{FIRST_BYTE_TARGET_S} s: "
            f"{'met' if first_over <= FIRST_BYTE_TARGET_S else 'NOT MET'}"
        )
        print(
            f"  run wall: median {statistics.median(s['wall_s'] for s in samples):.2f} s vs Genie "
            f"total {statistics.median(s['genie_total_s'] for s in samples):.2f} s: "
            f"{wall_over:+.2f} s; target <= +{WALL_TARGET_S} s: "
            f"{'met' if wall_over <= WALL_TARGET_S else 'NOT MET'}  (host clock, median of {RUNS}); "
            f"host CPU of the process {statistics.median(s['host_cpu_s'] for s in samples):.2f} s "
            f"(getrusage; on a busy machine the CPU it waits for adds to the wall)"
        )
        results.update(
            samples=samples,
            first_byte_over_genie_s_median=first_over,
            wall_over_genie_s_median=wall_over,
        )
        _doctor(server.address, env)  # seen once: the phone is known from here on
        doctors = [_doctor(server.address, env) for _ in range(3)]
        own = statistics.median(d["own_s"] for d in doctors)
        print(
            f"  doctor on a phone already seen (SIMULATED): wall "
            f"{statistics.median(d['wall_s'] for d in doctors):.2f} s, of which Genie probes "
            f"{statistics.median(d['genie_probe_s'] for d in doctors):.2f} s: own {own:.2f} s; "
            f"target <= {DOCTOR_TARGET_S} s: {'met' if own <= DOCTOR_TARGET_S else 'NOT MET'} "
            "(host clock, median of 3)"
        )
        results["doctor"] = {"runs": doctors, "own_s_median": own}
    finally:
        server.stop()
    return results


if __name__ == "__main__":
    main()
