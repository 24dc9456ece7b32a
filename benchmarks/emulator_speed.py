"""Speed of the emulated phone (SIMULATED phone, host clock throughout).

- Google's adb push / pull of ~200 MB over an ``unlimited`` link: target >= 200 MB/s (the
  bytes go to a descriptor the phone's init opened inside its sandbox, on its /data image).
- Per-command latency, median of 50: ``adb shell true`` (a whole adb client process each
  time, as a user runs it), minus the adb client alone (``get-state``): the device round
  trip, target <= 5 ms; adb-shell ``shell("true")`` on one open connection; and the phone
  alone (``Phone.sh("true")``: a request to the phone's init, which spawns the real mksh).
- Starting a phone (its /data image, trees, sandbox and init).
- Push over the ``usb3`` link model: expected ~120 MB/s (config.LINK_SPEEDS_BPS), i.e. the
  token bucket, not the host, sets the pace.

Google's adb runs with a private HOME and adb server port, so a developer's keys and adb
server are never touched. MB = 10^6 bytes.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

SIZE = 200 * 1000 * 1000
PUSH_TARGET_MBPS = 200.0
LATENCY_TARGET_MS = 5.0
USB3_EXPECTED_MBPS = 120.0
RUNS = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


class _Adb:
    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(_free_port())}
        self.env.pop("ANDROID_SERIAL", None)

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["adb", *args], env=self.env, capture_output=True, text=True,
                              timeout=300, check=True)  # fmt: skip

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        self(*args)
        return time.perf_counter() - t0


def _row(name: str, measured: float, unit: str, target: str) -> None:
    print(f"  {name:<44} {measured:>9.1f} {unit:<5} (target {target})")


def main() -> dict:
    from adb_shell.adb_device import AdbDeviceTcp

    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer

    if shutil.which("adb") is None:
        print("  Google's adb is not installed: `make adb`")
        return {"skipped": "adb not installed"}
    results: dict = {"simulated_phone": True, "clock": "host (time.perf_counter)"}
    with tempfile.TemporaryDirectory(prefix="qwenchat-emu-bench-") as tmp_name:
        tmp = Path(tmp_name)
        adb = _Adb(tmp / "home")
        src = _random_file(tmp / "payload.bin", SIZE)
        fast = EmulatorServer(EmulatorConfig(root=tmp / "fast", auth=False, link="unlimited"))
        usb3 = EmulatorServer(EmulatorConfig(root=tmp / "usb3", auth=False, link="usb3"))
        t0 = time.perf_counter()
        fast.start()
        results["phone_start_s"] = time.perf_counter() - t0
        usb3.start()
        try:
            adb("connect", fast.address)
            adb("connect", usb3.address)
            adb("-s", fast.address, "wait-for-device")
            push_s = adb.timed("-s", fast.address, "push", str(src), "/data/local/tmp/b.bin")
            pull_s = adb.timed("-s", fast.address, "pull", "/data/local/tmp/b.bin",
                               str(tmp / "back.bin"))  # fmt: skip
            results["push_MBps"] = SIZE / push_s / 1e6
            results["pull_MBps"] = SIZE / pull_s / 1e6
            (tmp / "back.bin").unlink()

            adb("-s", fast.address, "shell", "true")  # warm-up
            samples = [adb.timed("-s", fast.address, "shell", "true") for _ in range(RUNS)]
            results["adb_shell_true_ms"] = statistics.median(samples) * 1000
            # The adb client process alone (asks only the local adb server): the part of
            # `adb shell true` the emulator cannot influence.
            base = [adb.timed("-s", fast.address, "get-state") for _ in range(RUNS)]
            results["adb_client_baseline_ms"] = statistics.median(base) * 1000
            results["adb_shell_true_minus_baseline_ms"] = (
                results["adb_shell_true_ms"] - results["adb_client_baseline_ms"]
            )

            device = AdbDeviceTcp("127.0.0.1", fast.port, default_transport_timeout_s=10)
            device.connect(rsa_keys=None, auth_timeout_s=5)
            device.shell("true")
            lat = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                device.shell("true")
                lat.append(time.perf_counter() - t0)
            device.close()
            results["adb_shell_lib_true_ms"] = statistics.median(lat) * 1000
            fast.phone.sh("true")
            alone = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                fast.phone.sh("true")
                alone.append(time.perf_counter() - t0)
            results["phone_sh_true_ms"] = statistics.median(alone) * 1000

            usb3_s = adb.timed("-s", usb3.address, "push", str(src), "/data/local/tmp/b.bin")
            results["usb3_push_MBps"] = SIZE / usb3_s / 1e6
        finally:
            subprocess.run(["adb", "kill-server"], env=adb.env, capture_output=True, check=False)
            fast.stop()
            usb3.stop()

    print(f"  SIMULATED phone, {SIZE / 1e6:.0f} MB random file, host clock; MB = 10^6 bytes")
    _row(
        "Google adb push (unlimited link)",
        results["push_MBps"],
        "MB/s",
        f">= {PUSH_TARGET_MBPS:.0f}",
    )
    _row(
        "Google adb pull (unlimited link)",
        results["pull_MBps"],
        "MB/s",
        f">= {PUSH_TARGET_MBPS:.0f}",
    )
    _row(f"`adb shell true`, median of {RUNS}", results["adb_shell_true_ms"], "ms",
         f"<= {LATENCY_TARGET_MS:.0f}")  # fmt: skip
    _row("  of which the adb client itself (get-state)", results["adb_client_baseline_ms"], "ms",
         "n/a")  # fmt: skip
    _row("  so device round trip via adb server", results["adb_shell_true_minus_baseline_ms"],
         "ms", f"<= {LATENCY_TARGET_MS:.0f}")  # fmt: skip
    _row(f'adb-shell shell("true"), median of {RUNS}', results["adb_shell_lib_true_ms"], "ms",
         f"<= {LATENCY_TARGET_MS:.0f}")  # fmt: skip
    _row(f"phone alone: Phone.sh('true'), median of {RUNS}", results["phone_sh_true_ms"], "ms",
         "n/a")  # fmt: skip
    _row("starting a phone (image, trees, sandbox, init)", results["phone_start_s"] * 1000, "ms",
         "n/a")  # fmt: skip
    _row("Google adb push (usb3 link model)", results["usb3_push_MBps"], "MB/s",
         f"~{USB3_EXPECTED_MBPS:.0f} expected")  # fmt: skip
    results["targets"] = {
        "push_pull_MBps_min": PUSH_TARGET_MBPS,
        "latency_ms_max": LATENCY_TARGET_MS,
        "usb3_MBps_expected": USB3_EXPECTED_MBPS,
    }
    results["met"] = {
        "push": results["push_MBps"] >= PUSH_TARGET_MBPS,
        "pull": results["pull_MBps"] >= PUSH_TARGET_MBPS,
        "adb_shell_true": results["adb_shell_true_ms"] <= LATENCY_TARGET_MS,
        "adb_shell_true_minus_baseline": results["adb_shell_true_minus_baseline_ms"]
        <= LATENCY_TARGET_MS,
        "adb_shell_lib_true": results["adb_shell_lib_true_ms"] <= LATENCY_TARGET_MS,
        "usb3_within_15pct": abs(results["usb3_push_MBps"] - USB3_EXPECTED_MBPS)
        <= 0.15 * USB3_EXPECTED_MBPS,
    }
    return results


if __name__ == "__main__":
    main()
