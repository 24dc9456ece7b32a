"""Thermal zones of the emulated phone.

Zones heat in proportion to busy time and cool exponentially toward ambient (Newton's law).
Both follow the time scale: at scale 0.1 a trial takes a tenth of the host time, heats the
phone as much as the full-length trial would, and cools ten times faster on the host clock.
State lives in ``state/thermal.json`` so the ADB server (reading zones) and each simulated
genie-t2t-run process (heating them) share it; a file lock keeps updates whole.

One zone is unreadable (reading it fails with EINVAL), as some zones are on real phones.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

AMBIENT_C = 30.0
COOLING_TAU_S = 45.0  # emulated seconds for the excess temperature to fall by 1/e


@dataclass(frozen=True)
class Zone:
    type: str
    heat_c_per_busy_s: float  # degrees gained per emulated second of NPU work
    readable: bool = True


ZONES: tuple[Zone, ...] = (
    Zone("cpu-0-0-0", 0.10),
    Zone("cpu-1-0-0", 0.12),
    Zone("gpuss-0", 0.05),
    Zone("sdr0-pa0", 0.0, readable=False),
    Zone("nsphvx-0", 0.45),
    Zone("nsphmx-0", 0.40),
    Zone("ddr", 0.20),
    Zone("battery", 0.03),
)
MAX_C = 95.0


class ThermalModel:
    def __init__(self, state_dir: Path, time_scale: float = 1.0) -> None:
        self.path = Path(state_dir) / "thermal.json"
        self.time_scale = time_scale

    def _decayed(self, temps: list[float], since: float, now: float) -> list[float]:
        emulated_dt = max(0.0, now - since) / self.time_scale
        factor = math.exp(-emulated_dt / COOLING_TAU_S)
        return [AMBIENT_C + (t - AMBIENT_C) * factor for t in temps]

    def _load(self) -> tuple[list[float], float]:
        try:
            data = json.loads(self.path.read_text())
            return list(data["temps"]), float(data["t"])
        except (OSError, ValueError, KeyError):
            return [AMBIENT_C] * len(ZONES), time.time()

    def temperatures_c(self, now: float | None = None) -> list[float | None]:
        """Current temperature of each zone; None for the unreadable one."""
        temps, since = self._load()
        current = self._decayed(temps, since, time.time() if now is None else now)
        return [t if z.readable else None for t, z in zip(current, ZONES, strict=True)]

    def add_busy(self, host_seconds: float) -> None:
        """Heat every zone for ``host_seconds`` of work measured on the host clock."""
        emulated_busy = host_seconds / self.time_scale
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = time.time()
            temps, since = self._load()
            current = self._decayed(temps, since, now)
            heated = [
                min(MAX_C, t + z.heat_c_per_busy_s * emulated_busy)
                for t, z in zip(current, ZONES, strict=True)
            ]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"t": now, "temps": heated}))
            tmp.replace(self.path)
