"""The simulation's line to the emulator: ``/dev/socket/qwenchat`` (``emulator.services``).

The simulated genie-t2t-run runs inside the phone and sees only the phone; what a real
runtime would get from the hardware (the SoC, how fast it is, whether it fails) it asks the
emulator for here, and it reports its NPU work so the phone heats up.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field

SOCKET = "/dev/socket/qwenchat"


class NotOnEmulator(Exception):
    pass


@dataclass(frozen=True)
class SimFaults:
    crash_after_tokens: int | None = None
    hang_before_first_token: bool = False
    fail_load: bool = False


@dataclass(frozen=True)
class SimSettings:
    soc: str
    time_scale: float
    jitter: bool
    profile: dict | None = None  # overrides of the default device profile
    faults: SimFaults = field(default_factory=SimFaults)


class EmulatorLink:
    def __init__(self, path: str = SOCKET) -> None:
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.connect(path)
        except OSError as exc:
            raise NotOnEmulator(f"no {path} ({exc.strerror or exc})") from None
        self._file = self._sock.makefile("rwb", buffering=0)
        # genie-app's async queries ask from another thread: one question at a time.
        self._lock = threading.Lock()

    def _ask(self, request: dict) -> dict:
        try:
            with self._lock:
                self._file.write(json.dumps(request).encode() + b"\n")
                line = self._file.readline()
        except OSError as exc:
            raise NotOnEmulator(f"the emulator does not answer ({exc})") from None
        if not line:
            raise NotOnEmulator("the emulator closed the line")
        return json.loads(line)

    def settings(self) -> SimSettings:
        data = self._ask({"op": "genie"})
        faults = data.get("faults") or {}
        return SimSettings(
            soc=str(data["soc"]),
            time_scale=float(data["time_scale"]),
            jitter=bool(data["jitter"]),
            profile=data.get("profile"),
            faults=SimFaults(
                crash_after_tokens=faults.get("crash_after_tokens"),
                hang_before_first_token=bool(faults.get("hang_before_first_token")),
                fail_load=bool(faults.get("fail_load")),
            ),
        )

    def heat(self, seconds: float) -> None:
        try:
            self._ask({"op": "heat", "seconds": seconds})
        except NotOnEmulator:
            pass  # the phone is going away; the heat no longer matters
