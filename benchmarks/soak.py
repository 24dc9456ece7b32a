"""Soak: 300 chat turns in one session and 300 bench trials against the emulated phone.

What must hold (issue "Faults: nothing hangs, nothing is lost"): the host process's memory
(RSS) grows by less than 20 MB and its open file descriptors not at all over the run, and
nothing is left on the phone afterwards: no genie-t2t-run process (pidof), nothing in the
work dir's tmp/ (prompt, profile, config files) or states/ (dialog states).

The emulated phone runs in this process; the workload runs in a child process
(``python -m benchmarks.soak --worker ADDRESS``) so that the figures are the product's alone,
not the emulator's. The child measures itself (/proc/self/status VmRSS, /proc/self/fd) after
a warm-up (tokenizer, template and caches loaded), after the chat and after the bench, and
prints one JSON line per checkpoint. Everything runs at a fast time scale: SIMULATED.

Then the hard-kill round (``soak_kill.py``, issue 31): 50 SIGKILLs of qwenchat at random
points of one-shots, chats, benches and pushes on one phone, then one ordinary command; the
work dir must hold only the bundle and its manifest, and what was shown before each kill be
stored.

Run it with `make soak` or `python -m benchmarks.soak [--turns N] [--trials N] [--kills N]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_SCALE = 0.005
TURNS = 300
TRIALS = 300
WARMUP_TURNS = 10
RSS_LIMIT_MB = 20.0


# --------------------------------------------------------------------------- the child


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _checkpoint(name: str, **extra: object) -> None:
    import gc

    gc.collect()
    print(json.dumps({"checkpoint": name, "rss_mb": round(_rss_mb(), 2), "fds": _fds(), **extra}),
          flush=True)


def worker(address: str, turns: int, trials: int) -> int:
    from qwenchat.bench.runner import BenchOptions, new_run
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.chat.outcome import StopReason
    from qwenchat.chat.session import ContextBudgetError, SamplerSettings, open_chat_session
    from qwenchat.device.direct import DirectDevice
    from qwenchat.store import open_store

    host, _, port = address.rpartition(":")
    stops: dict[str, int] = {}
    with DirectDevice.connect_tcp(host, int(port), auth_timeout=10) as dev, open_store() as store:
        session = open_chat_session(dev, store=store, settings=SamplerSettings(max_tokens=16))

        def turn(i: int) -> None:
            text = f"Turn {i}: tell me one more fact about phones."
            try:
                result = session.send(text)
            except ContextBudgetError as exc:  # what the chat offers: drop the oldest turns
                session.drop_oldest(exc.drop_turns or 1)
                result = session.send(text)
            stops[result.stop.value] = stops.get(result.stop.value, 0) + 1
            # A reply may fill the context exactly (the budget allows it): the next turn
            # then drops the oldest turns, as the chat offers.
            if result.stop not in (StopReason.EOS, StopReason.MAX_TOKENS, StopReason.CONTEXT_FULL):
                raise RuntimeError(f"turn {i} ended with {result.stop}: {result.error}")

        for i in range(WARMUP_TURNS):
            turn(i)
        stops.clear()
        _checkpoint("after warm-up", turns=WARMUP_TURNS)
        started = time.monotonic()
        for i in range(WARMUP_TURNS, WARMUP_TURNS + turns):
            turn(i)
        session.end()  # the chat is over: its dialog state leaves the phone
        _checkpoint("after chat", turns=turns, seconds=round(time.monotonic() - started, 1),
                    stops=stops)
        started = time.monotonic()
        options = BenchOptions(
            lengths=[128], repetitions=trials, warmup=0, cooldown="0", gen_len=16, seed=1
        )
        run_id = new_run(dev, BenchStorage(store), options)
        ok = store.db.execute(
            "SELECT COUNT(*) FROM bench_trials WHERE run_id = ? AND ok = 1", (run_id,)
        ).fetchone()[0]
        _checkpoint("after bench", trials=trials, ok_trials=ok,
                    seconds=round(time.monotonic() - started, 1))
    return 0


# --------------------------------------------------------------------------- the parent


def _leftovers(dev) -> dict:  # noqa: ANN001
    from qwenchat.layout import PhoneLayout
    from qwenchat.shellwords import quote

    layout = PhoneLayout()
    return {
        "genie_pids": dev.shell("pidof genie-t2t-run").text.split(),
        "tmp": dev.shell(f"ls {quote(layout.tmp_dir)} 2>/dev/null").text.split(),
        "states": dev.shell(f"ls {quote(layout.states_dir)} 2>/dev/null").text.split(),
    }


def main(turns: int = TURNS, trials: int = TRIALS) -> dict:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer
    from qwenchat.layout import PhoneLayout

    tmp = Path(tempfile.mkdtemp(prefix="qwenchat-soak-"))
    env = dict(os.environ, QWENCHAT_HOME=str(tmp / "home"))
    bundle = make_bundle(tmp / "bundle", bin_size_mb=1, arch="v79", parts=4)
    config = EmulatorConfig(root=tmp / "phone", time_scale=TIME_SCALE, jitter=False, auth=False)
    server = EmulatorServer(config, port=0)
    server.start()
    results: dict = {"simulated": True, "time_scale": TIME_SCALE}
    try:
        with DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5) as dev:
            plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
            push_assets(dev, plan, PhoneLayout(), overlap=False)
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.soak", "--worker", server.address,
             "--turns", str(turns), "--trials", str(trials)],
            env=env, capture_output=True, text=True, check=False,
        )
        points = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        results["checkpoints"] = points
        if proc.returncode != 0 or len(points) != 3:
            results["error"] = f"worker exited {proc.returncode}: {proc.stderr[-2000:]}"
        with DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5) as dev:
            results["left_on_phone"] = _leftovers(dev)
    finally:
        server.stop()
    _report(results)
    return results


def _report(results: dict) -> None:
    points = results.get("checkpoints", [])
    for p in points:
        extra = {k: v for k, v in p.items() if k not in ("checkpoint", "rss_mb", "fds")}
        print(f"  {p['checkpoint']:<14} RSS {p['rss_mb']:8.1f} MB  fds {p['fds']:3d}  {extra}")
    if len(points) == 3:
        base, end = points[0], points[-1]
        growth = end["rss_mb"] - base["rss_mb"]
        fd_growth = end["fds"] - base["fds"]
        results["rss_growth_mb"] = round(growth, 2)
        results["fd_growth"] = fd_growth
        print(
            f"  RSS growth {growth:+.1f} MB (limit {RSS_LIMIT_MB:.0f} MB: "
            f"{'ok' if growth < RSS_LIMIT_MB else 'EXCEEDED'}); fd growth {fd_growth:+d} "
            f"({'ok' if fd_growth <= 0 else 'LEAK'}) · host clock + /proc/self, SIMULATED phone"
        )
    left = results.get("left_on_phone", {})
    clean = not any(left.values())
    print(
        f"  left on the phone: genie-t2t-run pids {left.get('genie_pids')}, tmp/ "
        f"{left.get('tmp')}, states/ {left.get('states')} ({'clean' if clean else 'NOT CLEAN'})"
    )
    if "error" in results:
        print(f"  ERROR: {results['error']}")


def _args(argv: list[str]) -> dict:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--turns", type=int, default=TURNS)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    return vars(parser.parse_args(argv))


if __name__ == "__main__":
    args = _args(sys.argv[1:])
    if args["worker"]:
        sys.exit(worker(args["worker"], args["turns"], args["trials"]))
    results = main(args["turns"], args["trials"])
    ok = (
        "error" not in results
        and results.get("rss_growth_mb", RSS_LIMIT_MB) < RSS_LIMIT_MB
        and results.get("fd_growth", 1) <= 0
        and not any(results.get("left_on_phone", {"x": [1]}).values())
    )
    if args["kills"]:
        from benchmarks import soak_kill

        killed = soak_kill.main(args["kills"])
        ok = ok and not killed["problems"] and killed["kills"] == args["kills"]
    sys.exit(0 if ok else 1)
