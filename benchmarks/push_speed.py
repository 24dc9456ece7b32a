"""push-assets speed against the emulated phone (SIMULATED phone, host clock throughout).

1. A bundle of QWENCHAT_BENCH_PUSH_MB (default 1000 MB: 4 ctx-bins + the real tokenizer +
   the synthetic QAIRT runtime) to a phone on the ``usb3`` link model (~120 MB/s):
   Google's ``adb push`` of the same files vs ``push-assets`` through the adb server and
   direct (adb-shell). Each push-assets run starts from a cold hash cache and an empty work
   dir, so it pays for host hashing, phone-side sha256sum and the renames.
   Targets: ratio >= 0.9 through the server, >= 0.6 direct.
2. Re-push of an unchanged QWENCHAT_BENCH_UNCHANGED_MB bundle (default 5000 MB; first push
   over an ``unlimited`` link): target < 2 s, no file hashed on either side, and one shell
   call (the push lock is only taken when something must change).

MB = 10^6 bytes. Small quick run: QWENCHAT_BENCH_PUSH_MB=100 QWENCHAT_BENCH_UNCHANGED_MB=200.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PUSH_MB = int(os.environ.get("QWENCHAT_BENCH_PUSH_MB", "1000"))
UNCHANGED_MB = int(os.environ.get("QWENCHAT_BENCH_UNCHANGED_MB", "5000"))
SERVER_RATIO_TARGET = 0.9
DIRECT_RATIO_TARGET = 0.6
UNCHANGED_TARGET_S = 2.0
WORK = "/data/local/tmp/qwenchat"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Adb:
    """Google's adb with a private HOME and server port (a developer's adb is not touched)."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.port = str(_free_port())
        self.env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": self.port}
        self.env.pop("ANDROID_SERIAL", None)

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(["adb", *args], env=self.env, capture_output=True, text=True,
                                timeout=1800)  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"adb {args[:3]}: {(result.stderr or result.stdout).strip()}")
        return result


def _row(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"  {name:<52} {value:>9.2f} {unit:<5} {note}")


def _wipe(server, path: str) -> None:
    shutil.rmtree(server.config.fs_root / path.lstrip("/"), ignore_errors=True)
    server.phone.rescan_usage()


def _bundle(out: Path, total_mb: int):
    from qwenchat.emulator.bundle import make_bundle

    return make_bundle(out, bin_size_mb=max(1, total_mb // 4), arch="v79", parts=4)


def _push_assets(device, plan, cache_path: Path):
    from qwenchat.assets.push import push_assets
    from qwenchat.layout import PhoneLayout
    from qwenchat.manifest import HashCache

    with HashCache(cache_path) as cache:
        t0 = time.perf_counter()
        report = push_assets(device, plan, PhoneLayout(WORK), cache=cache)
        return time.perf_counter() - t0, report


def _speed(tmp: Path, adb: _Adb) -> dict:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.device.direct import DirectDevice
    from qwenchat.device.server import ServerDevice
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer

    paths = _bundle(tmp / "b1", PUSH_MB)
    plan = plan_bundle(paths.bundle, paths.qairt, "SM8750")
    files = [f.local for f in plan.files if f.local is not None]
    total = plan.total_size
    phone = EmulatorServer(EmulatorConfig(root=tmp / "usb3", auth=False, link="usb3"))
    phone.start()
    out: dict = {"bundle_bytes": total, "files": len(plan.files), "link": "usb3"}
    try:
        adb("connect", phone.address)
        adb("-s", phone.address, "wait-for-device")
        adb("-s", phone.address, "shell", "mkdir -p /data/local/tmp/adbref")
        # Google's adb: one client call for all files (its fastest form).
        t0 = time.perf_counter()
        adb("-s", phone.address, "push", *map(str, files), "/data/local/tmp/adbref/")
        adb_s = time.perf_counter() - t0
        _wipe(phone, "/data/local/tmp/adbref")
        out["adb_push_s"] = adb_s
        out["adb_push_MBps"] = total / adb_s / 1e6

        os.environ["ANDROID_ADB_SERVER_PORT"] = adb.port  # ServerDevice asks this server
        server_dev = ServerDevice(phone.address)
        try:
            server_s, rep = _push_assets(server_dev, plan, tmp / "cache-server.sqlite")
        finally:
            server_dev.close()
        _wipe(phone, WORK)
        out["server"] = {"seconds": server_s, "MBps": total / server_s / 1e6,
                         "ratio_vs_adb": adb_s / server_s, "report": rep.to_dict()}  # fmt: skip

        direct_dev = DirectDevice.connect_tcp("127.0.0.1", phone.port, auth_timeout=5)
        try:
            direct_s, rep = _push_assets(direct_dev, plan, tmp / "cache-direct.sqlite")
        finally:
            direct_dev.close()
        _wipe(phone, WORK)
        out["direct"] = {"seconds": direct_s, "MBps": total / direct_s / 1e6,
                         "ratio_vs_adb": adb_s / direct_s, "report": rep.to_dict()}  # fmt: skip
    finally:
        phone.stop()
        shutil.rmtree(tmp / "b1", ignore_errors=True)
    return out


def _unchanged(tmp: Path) -> dict:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer

    paths = _bundle(tmp / "b5", UNCHANGED_MB)
    plan = plan_bundle(paths.bundle, paths.qairt, "SM8750")
    phone = EmulatorServer(
        EmulatorConfig(root=tmp / "fast", auth=False, link="unlimited", free_mb=UNCHANGED_MB * 3)
    )
    phone.start()
    try:
        dev = DirectDevice.connect_tcp("127.0.0.1", phone.port, auth_timeout=5)
        try:
            first_s, first = _push_assets(dev, plan, tmp / "cache5.sqlite")
        finally:
            dev.close()
        # A new process would open a new connection and a new cache object: do the same.
        dev = DirectDevice.connect_tcp("127.0.0.1", phone.port, auth_timeout=5)
        try:
            again_s, again = _push_assets(dev, plan, tmp / "cache5.sqlite")
        finally:
            dev.close()
    finally:
        phone.stop()
        shutil.rmtree(tmp / "b5", ignore_errors=True)
    return {
        "bundle_bytes": plan.total_size,
        "first_push_s": first_s,
        "first_push_MBps": plan.total_size / first_s / 1e6,
        "unchanged_s": again_s,
        "unchanged_files_sent": again.files_sent,
        "unchanged_host_files_hashed": again.host_files_hashed,
        "unchanged_host_cache_hits": again.host_cache_hits,
        "unchanged_phone_files_hashed": again.phone_files_hashed,
        "unchanged_shell_calls": again.shell_calls,
    }


def main() -> dict:
    if shutil.which("adb") is None:
        print("  Google's adb is not installed: `make adb`")
        return {"skipped": "adb not installed"}
    results: dict = {"simulated_phone": True, "clock": "host (time.perf_counter)"}
    saved_port = os.environ.get("ANDROID_ADB_SERVER_PORT")
    with tempfile.TemporaryDirectory(prefix="qwenchat-push-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["QWENCHAT_HOME"] = str(tmp / "home")  # never touch a developer's cache
        adb = _Adb(tmp / "adb-home")
        try:
            speed = _speed(tmp, adb)
        finally:
            subprocess.run(["adb", "kill-server"], env=adb.env, capture_output=True, check=False)
            if saved_port is None:
                os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
            else:
                os.environ["ANDROID_ADB_SERVER_PORT"] = saved_port
        results["speed"] = speed
        mb = speed["bundle_bytes"] / 1e6
        print(f"  {mb:.0f} MB bundle, {speed['files']} files, usb3 link model (SIMULATED phone)")
        _row("Google adb push (same files, one call)", speed["adb_push_MBps"], "MB/s",
             f"{speed['adb_push_s']:.1f} s")  # fmt: skip
        for name, target in (("server", SERVER_RATIO_TARGET), ("direct", DIRECT_RATIO_TARGET)):
            r = speed[name]
            _row(f"push-assets via {name} (hash+verify+rename incl.)", r["MBps"], "MB/s",
                 f"{r['seconds']:.1f} s; ratio {r['ratio_vs_adb']:.2f} (target >= {target})")  # fmt: skip
            results[f"{name}_ratio_ok"] = r["ratio_vs_adb"] >= target

        unchanged = _unchanged(tmp)
        results["unchanged"] = unchanged
        print(f"  {unchanged['bundle_bytes'] / 1e6:.0f} MB bundle, unlimited link")
        _row("first push (direct, cold cache)", unchanged["first_push_MBps"], "MB/s",
             f"{unchanged['first_push_s']:.1f} s")  # fmt: skip
        _row("re-push unchanged", unchanged["unchanged_s"], "s",
             f"(target < {UNCHANGED_TARGET_S}); files hashed: host "
             f"{unchanged['unchanged_host_files_hashed']}, phone "
             f"{unchanged['unchanged_phone_files_hashed']}; "
             f"{unchanged['unchanged_shell_calls']} shell call(s)")  # fmt: skip
        results["unchanged_ok"] = (
            unchanged["unchanged_s"] < UNCHANGED_TARGET_S
            and unchanged["unchanged_host_files_hashed"] == 0
            and unchanged["unchanged_phone_files_hashed"] == 0
            and unchanged["unchanged_files_sent"] == 0
            and unchanged["unchanged_shell_calls"] == 1
        )
    return results


if __name__ == "__main__":
    main()
