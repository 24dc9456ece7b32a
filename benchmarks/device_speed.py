"""Device layer speed against the emulated phone on loopback (link "unlimited"), host clock.

* shell round trip (``true``, median of many): our direct transport, adb-shell's stock
  ``AdbDeviceTcp`` (Nagle + delayed ACK, for comparison) and Google's adb server (adbutils +
  our sockets);
* push MB/s of a random file: direct, through the adb server (our sync code) and Google's own
  ``adb push`` for reference.

The phone is SIMULATED: its Python ADB daemon bounds every figure; real phones differ
(USB 2.0 ~36 MB/s, USB 3.0 ~125 MB/s per AOSP). Run: ``python -m benchmarks device_speed``.
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

ROUND_TRIPS = 60
PUSH_MB = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _latency_ms(run, n: int = ROUND_TRIPS) -> float:
    run()  # warm-up
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def _push_mbps(push, size: int) -> float:
    start = time.perf_counter()
    push()
    return round(size / 1e6 / (time.perf_counter() - start), 1)


def main() -> dict:
    home = Path(tempfile.mkdtemp(prefix="qwenchat-devspeed-"))
    old_env = {k: os.environ.get(k) for k in ("HOME", "QWENCHAT_HOME", "ANDROID_ADB_SERVER_PORT")}
    os.environ["HOME"] = str(home)
    os.environ["QWENCHAT_HOME"] = str(home / "qwenchat")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(_free_port())
    adb = shutil.which("adb")
    server = None
    results: dict = {"source": "host clock, emulated phone on loopback (SIMULATED)"}
    try:
        from qwenchat.device.direct import DirectDevice
        from qwenchat.device.keys import ensure_adb_key
        from qwenchat.emulator.adbd.auth import KeyStore, parse_public_key
        from qwenchat.emulator.config import EmulatorConfig
        from qwenchat.emulator.server import EmulatorServer

        key = ensure_adb_key()
        config = EmulatorConfig(root=home / "phone", link="unlimited", free_mb=1 << 20)
        KeyStore(config.state_dir).add_authorized(parse_public_key(Path(f"{key}.pub").read_text()))
        server = EmulatorServer(config, port=0)
        server.start()
        payload = home / "payload.bin"
        payload.write_bytes(os.urandom(PUSH_MB * 1024 * 1024))
        size = payload.stat().st_size

        with DirectDevice.connect_tcp("127.0.0.1", server.port) as dev:
            results["direct_shell_ms"] = _latency_ms(lambda: dev.shell("true"))
            results["direct_push_MBps"] = _push_mbps(
                lambda: dev.push(payload, "/data/local/tmp/p1.bin"), size
            )

        from adb_shell.adb_device import AdbDeviceTcp

        from qwenchat.device.keys import load_signer

        stock = AdbDeviceTcp("127.0.0.1", server.port, default_transport_timeout_s=10)
        stock.connect(rsa_keys=[load_signer()])
        results["adb_shell_stock_shell_ms"] = _latency_ms(lambda: stock.shell("true"), n=20)
        stock.close()

        if adb:
            from qwenchat.device.server import ServerDevice

            port = os.environ["ANDROID_ADB_SERVER_PORT"]
            subprocess.run([adb, "-P", port, "start-server"], capture_output=True, timeout=30)
            subprocess.run(
                [adb, "-P", port, "connect", server.address], capture_output=True, timeout=30
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                out = subprocess.run(
                    [adb, "-P", port, "devices"], capture_output=True, text=True, timeout=30
                ).stdout
                if f"{server.address}\tdevice" in out:
                    break
                time.sleep(0.1)
            sdev = ServerDevice(server.address)
            results["server_shell_ms"] = _latency_ms(lambda: sdev.shell("true"))
            results["server_push_MBps"] = _push_mbps(
                lambda: sdev.push(payload, "/data/local/tmp/p2.bin"), size
            )
            results["google_adb_push_MBps"] = _push_mbps(
                lambda: subprocess.run(
                    [
                        adb,
                        "-P",
                        port,
                        "-s",
                        server.address,
                        "push",
                        str(payload),
                        "/data/local/tmp/p3.bin",
                    ],
                    capture_output=True,
                    timeout=300,
                    check=True,
                ),
                size,
            )
            subprocess.run([adb, "-P", port, "kill-server"], capture_output=True, timeout=30)
        else:
            results["server"] = "skipped: Google's adb is not installed"
    finally:
        if server is not None:
            server.stop()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(home, ignore_errors=True)
    for name, value in results.items():
        print(f"   {name:28} {value}")
    return results


if __name__ == "__main__":
    main()
