"""The emulator's service socket inside the phone: ``/dev/socket/qwenchat``.

The simulated genie-t2t-run runs in the sandbox and cannot read the emulator's state; it
asks here, as Android's programs ask init's property service over ``/dev/socket``. One JSON
object per line, both ways:

- ``{"op": "genie"}`` -> the settings a run needs: SoC, time scale, jitter, the device
  profile (the JSON of ``--profile``, read here on the host), and the genie fault switches;
- ``{"op": "heat", "seconds": S}`` -> ``{"ok": true}``: S seconds of NPU work heat the phone.

Any phone process can connect (it is the phone's own simulated state, as a CPU-bound loop
would heat a real phone); requests are checked, sizes bounded, connections few.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from qwenchat.emulator.config import LiveConfig
from qwenchat.emulator.thermal import ThermalModel

log = logging.getLogger("qwenchat.emulator")

MAX_LINE = 4096
MAX_CONNECTIONS = 32
MAX_HEAT_S = 3600.0


class ServiceSocket:
    def __init__(
        self,
        live: LiveConfig,
        thermal: ThermalModel,
        path: Path,
        on_heat: Callable[[], None] | None = None,
    ) -> None:
        self.live = live
        self.thermal = thermal
        self.path = path
        self.on_heat = on_heat  # the phone's /sys shows the new temperatures before we answer
        self._sock: socket.socket | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stopping = threading.Event()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The folder may be deep (a test's tmp dir): a unix socket path has 108 bytes at most,
        # the /proc/self/fd alias of the folder has a few dozen.
        dir_fd = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sock.bind(f"/proc/self/fd/{dir_fd}/{self.path.name}")
        finally:
            os.close(dir_fd)
        os.chmod(self.path, 0o666)
        sock.listen(8)
        self._sock = sock
        threading.Thread(target=self._accept, name="phone-services", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rwb", buffering=0) as f:
                while True:
                    line = f.readline(MAX_LINE + 1)
                    if not line or len(line) > MAX_LINE:
                        return
                    try:
                        answer = self.answer(json.loads(line))
                    except (ValueError, TypeError, AttributeError):
                        answer = {"error": "bad request"}
                    f.write(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass
        finally:
            self._slots.release()

    def answer(self, request: dict) -> dict:
        op = request.get("op")
        if op == "genie":
            return self.genie_settings()
        if op == "heat":
            seconds = float(request.get("seconds", 0))
            if not math.isfinite(seconds) or seconds < 0:
                return {"error": "bad heat"}
            self.thermal.add_busy(min(seconds, MAX_HEAT_S))
            if self.on_heat is not None:
                self.on_heat()
            return {"ok": True}
        return {"error": f"unknown op {op!r}"}

    def genie_settings(self) -> dict:
        config = self.live.refresh()
        profile = None
        if config.genie_profile is not None:
            try:
                profile = json.loads(Path(config.genie_profile).read_text())
            except (OSError, ValueError) as exc:
                log.warning("genie profile %s unreadable: %s", config.genie_profile, exc)
        f = config.faults
        return {
            "soc": config.soc,
            "time_scale": config.time_scale,
            "jitter": config.jitter,
            "profile": profile,
            "faults": {
                "crash_after_tokens": f.crash_after_tokens,
                "hang_before_first_token": f.hang_before_first_token,
                "fail_load": f.fail_load,
            },
        }
