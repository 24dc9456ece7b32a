"""Several phones at once (issue #29), on emulated phones (SIMULATED phones, host clock).

1. push-assets to 4 phones, each on its own ``usb3`` link model (~120 MB/s), all at once
   (``qwenchat.assets.fleet.push_fleet``, through Google's adb server) vs Google's ``adb
   push`` of the same files to the same 4 phones, 4 clients at once. Ratio = adb's seconds
   / ours; target >= 0.95. Ours includes host hashing (once for all phones), the phone-side
   sha256sum of every file and the renames; adb's is the copy alone. Also printed: adb push
   followed by ``sha256sum`` of the files on each phone, the same check push-assets makes
   (on emulated phones that hashing runs on the host's own cores, competing with the copy).
2. Host CPU per bench trial (this process: user + sys, getrusage) with 8 phones vs 1, the
   same sweep on each (``qwenchat.bench.fleet.run_fleet``). The phones are emulator daemons
   (other processes), so their CPU is not counted: what is measured is what qwenchat's
   orchestrating process spends per trial. Target: 8 phones <= 1.2x one phone.
3. For the README's "100 phones on 10 hosts": the orchestrator's memory per phone (RSS
   growth while QWENCHAT_BENCH_FLEET_MAX phones are listed and benched at once) and threads
   per phone.

MB = 10^6 bytes. QWENCHAT_BENCH_FLEET_MB: bundle size (default 200); quick run: 40.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FLEET_MB = int(os.environ.get("QWENCHAT_BENCH_FLEET_MB", "200"))
MAX_PHONES = int(os.environ.get("QWENCHAT_BENCH_FLEET_MAX", "16"))
PUSH_TARGET = 0.95
CPU_TARGET = 1.2
WORK = "/data/local/tmp/qwenchat"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _row(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"  {name:<58} {value:>9.2f} {unit:<6} {note}")


def _adb(port: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": port}
    result = subprocess.run(["adb", *args], env=env, capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"adb {args[:3]}: {(result.stderr or result.stdout).strip()}")
    return result


def _wipe(server, path: str) -> None:
    shutil.rmtree(server.config.fs_root / path.lstrip("/"), ignore_errors=True)
    server.phone.rescan_usage()


def _push(tmp: Path) -> dict:
    """4 usb3 phones (emulator daemons: their own processes, as phones are their own
    devices): adb push x4 at once vs push_fleet."""
    from qwenchat.assets import fleet as _fleet
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.fleet import BundleChoice, FleetPushRequest
    from qwenchat.device.phoneset import PhoneRef, open_phone
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.daemon import start_daemon, stop_daemon
    from qwenchat.layout import PhoneLayout
    from qwenchat.manifest import HashCache

    paths = make_bundle(tmp / "bundle", bin_size_mb=max(1, FLEET_MB // 4), arch="v79", parts=4)
    plan = plan_bundle(paths.bundle, paths.qairt, "SM8750")
    files = [str(f.local) for f in plan.files if f.local is not None]
    port = str(_free_port())
    saved = os.environ.get("ANDROID_ADB_SERVER_PORT")
    out: dict = {"phones": 4, "link": "usb3", "bundle_bytes": plan.total_size}
    roots, addresses = [], []
    try:
        for i in range(4):
            config = EmulatorConfig(root=tmp / f"usb3-{i}", auth=False, link="usb3")
            addresses.append(start_daemon(config, 0).address)
            roots.append(config.root)
        _adb(port, "start-server")
        for address in addresses:
            _adb(port, "connect", address)
            _adb(port, "-s", address, "wait-for-device", timeout=30)
            _adb(port, "-s", address, "shell", "mkdir -p /data/local/tmp/adbref")

        def adb_push(address: str) -> None:
            _adb(port, "-s", address, "push", *files, "/data/local/tmp/adbref/")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(adb_push, addresses))
        adb_s = time.perf_counter() - t0
        for address in addresses:
            _adb(port, "-s", address, "shell", "rm -rf /data/local/tmp/adbref && "
                 "mkdir -p /data/local/tmp/adbref")  # fmt: skip

        def adb_push_and_check(address: str) -> None:
            # What push-assets also does: every file hashed on the phone after it lands.
            adb_push(address)
            _adb(port, "-s", address, "shell", "cd /data/local/tmp/adbref && sha256sum * >/dev/null")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(adb_push_and_check, addresses))
        adb_checked_s = time.perf_counter() - t0
        for address in addresses:
            _adb(port, "-s", address, "shell", "rm -rf /data/local/tmp/adbref")

        os.environ["ANDROID_ADB_SERVER_PORT"] = port  # the phones' adb server
        refs = [PhoneRef(a, None, "server", "server", "device") for a in addresses]
        request = FleetPushRequest(
            [BundleChoice(None, paths.bundle)],
            lambda bundle, soc, cache: plan,  # planned above, as push_speed does: not timed
            PhoneLayout(WORK),
        )
        with HashCache(tmp / "cache.sqlite") as cache:  # cold: the hashing is counted
            cpu0, t0 = _cpu_s(), time.perf_counter()
            results = _fleet.push_fleet([(r.name, lambda r=r: open_phone(r)) for r in refs],
                                        request, cache)  # fmt: skip
            ours_s, ours_cpu = time.perf_counter() - t0, _cpu_s() - cpu0
            shell_calls = sum(r.report.shell_calls for r in results if r.report)
        failed = [r.phone for r in results if r.status != "sent"]
        if failed:
            raise RuntimeError(f"push_fleet did not send to {failed}")
    finally:
        subprocess.run(["adb", "-P", port, "kill-server"], capture_output=True, check=False)
        if saved is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = saved
        for root in roots:
            stop_daemon(root)
    total = plan.total_size * 4
    out.update(adb_push_s=adb_s, adb_push_MBps=total / adb_s / 1e6, fleet_s=ours_s,
               fleet_MBps=total / ours_s / 1e6, ratio=adb_s / ours_s,
               adb_push_sha_s=adb_checked_s, ratio_vs_push_sha=adb_checked_s / ours_s,
               fleet_cpu_s=ours_cpu, fleet_shell_calls=shell_calls)  # fmt: skip
    return out


def _daemon_phones(tmp: Path, n: int, paths) -> list:  # noqa: ANN001
    """n emulator daemons (own processes), the small bundle pushed to each."""
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.daemon import start_daemon
    from qwenchat.layout import PhoneLayout

    plan = plan_bundle(paths.bundle, paths.qairt, "SM8750")
    running = []
    for i in range(n):
        config = EmulatorConfig(root=tmp / f"phone-{i}", auth=False, time_scale=0.01,
                                jitter=False)  # fmt: skip
        running.append((config.root, start_daemon(config, 0)))
    for _, r in running:
        with DirectDevice.connect_tcp("127.0.0.1", r.port, auth_timeout=5) as dev:
            push_assets(dev, plan, PhoneLayout(WORK))
    return running


def _bench(refs: list, tag: str) -> tuple[float, int, float, float]:
    """One fleet sweep over ``refs``; (CPU seconds of this process, trials, wall s, RSS
    peak growth MB while it ran)."""
    from qwenchat.bench.fleet import run_fleet
    from qwenchat.bench.runner import BenchOptions
    from qwenchat.device.phoneset import open_phone

    options = BenchOptions(lengths=[128, 256], gen_len=8, repetitions=3, warmup=0,
                           cooldown="0", seed=7)  # fmt: skip
    base_rss = _rss_mb()
    peak = [base_rss]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cpu0, t0 = _cpu_s(), time.perf_counter()
    _, ends = run_fleet([(r.name, lambda r=r: open_phone(r)) for r in refs], options, WORK)
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - t0
    stop.set()
    watcher.join()
    bad = [e.phone for e in ends if e.status != "done"]
    if bad:
        raise RuntimeError(f"{tag}: phones did not finish: {bad}")
    trials = len(refs) * 2 * 3
    return cpu, trials, wall, peak[0] - base_rss


def _cpu_and_memory(tmp: Path) -> dict:
    from qwenchat.device.phoneset import PhoneRef
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.daemon import stop_daemon

    paths = make_bundle(tmp / "small", bin_size_mb=1, arch="v79", parts=4)
    n = max(8, MAX_PHONES)
    running = _daemon_phones(tmp, n, paths)
    out: dict = {}
    try:
        refs = [PhoneRef(f"127.0.0.1:{r.port}", None, "direct", "tcp", "device")
                for _, r in running]  # fmt: skip
        _bench(refs[:1], "warm-up")  # imports, tokenizer, store: paid once, not per phone
        one = _bench(refs[:1], "1 phone")
        eight = _bench(refs[:8], "8 phones")
        out["cpu_per_trial_1_s"] = one[0] / one[1]
        out["cpu_per_trial_8_s"] = eight[0] / eight[1]
        out["cpu_ratio_8_vs_1"] = out["cpu_per_trial_8_s"] / out["cpu_per_trial_1_s"]
        out["wall_1_s"], out["wall_8_s"] = one[2], eight[2]
        threads0 = threading.active_count()
        many = _bench(refs, f"{n} phones")
        out["phones_max"] = n
        out["cpu_per_trial_max_s"] = many[0] / many[1]
        out["rss_growth_max_MB"] = many[3]
        out["rss_per_phone_MB"] = many[3] / n
        out["wall_max_s"] = many[2]
        out["threads_idle"] = threads0
    finally:
        for root, _ in running:
            stop_daemon(root)
    return out


def total_mb_s(push: dict) -> float:
    return push["bundle_bytes"] * 4 / push["adb_push_sha_s"] / 1e6


def main() -> dict:
    if shutil.which("adb") is None:
        print("  Google's adb is not installed: `make adb`")
        return {"skipped": "adb not installed"}
    results: dict = {"simulated_phone": True, "clock": "host (time.perf_counter, getrusage)"}
    with tempfile.TemporaryDirectory(prefix="qwenchat-fleet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["QWENCHAT_HOME"] = str(tmp / "home")  # never touch a developer's store
        push = _push(tmp)
        results["push"] = push
        print(f"  {push['bundle_bytes'] / 1e6:.0f} MB bundle to 4 phones, usb3 link model each "
              "(SIMULATED phones)")  # fmt: skip
        _row("Google adb push, 4 clients at once", push["adb_push_MBps"], "MB/s",
             f"{push['adb_push_s']:.1f} s")  # fmt: skip
        _row("push-assets to the 4 (hash+verify+rename incl.)", push["fleet_MBps"], "MB/s",
             f"{push['fleet_s']:.1f} s; ratio {push['ratio']:.2f} (target >= {PUSH_TARGET})")  # fmt: skip
        _row("adb push + sha256sum on each phone (the same check)", total_mb_s(push), "MB/s",
             f"{push['adb_push_sha_s']:.1f} s; ours vs it: ratio {push['ratio_vs_push_sha']:.2f}")  # fmt: skip
        _row("  of which this process's CPU (the rest: phones, adb server)", push["fleet_cpu_s"],
             "s", f"{push['fleet_shell_calls']} shell calls on the 4 phones")  # fmt: skip
        results["push_ratio_ok"] = push["ratio"] >= PUSH_TARGET
        cpu = _cpu_and_memory(tmp)
        results["bench"] = cpu
        _row("host CPU per bench trial, 1 phone (this process)", cpu["cpu_per_trial_1_s"] * 1e3,
             "ms", f"wall {cpu['wall_1_s']:.1f} s")  # fmt: skip
        _row("host CPU per bench trial, 8 phones at once", cpu["cpu_per_trial_8_s"] * 1e3, "ms",
             f"wall {cpu['wall_8_s']:.1f} s; ratio {cpu['cpu_ratio_8_vs_1']:.2f} "
             f"(target <= {CPU_TARGET})")  # fmt: skip
        _row(f"host CPU per bench trial, {cpu['phones_max']} phones at once",
             cpu["cpu_per_trial_max_s"] * 1e3, "ms", f"wall {cpu['wall_max_s']:.1f} s")  # fmt: skip
        _row(f"orchestrator RSS growth per phone ({cpu['phones_max']} phones)",
             cpu["rss_per_phone_MB"], "MB")  # fmt: skip
        results["cpu_ratio_ok"] = cpu["cpu_ratio_8_vs_1"] <= CPU_TARGET
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2, default=str))
