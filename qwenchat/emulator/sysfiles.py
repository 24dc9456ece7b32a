"""The phone's /sys and its /proc overlays, written by the emulator and kept current.

The sandbox sees ``DIR/state/sys`` read-only as /sys: thermal zones
(``class/thermal/thermal_zoneN/{type,temp}``), the battery and USB power supplies, and the
settings the phone reports (``qwenchat/settings``, read by ``settings``/``cmd``). A thread
rewrites the values every ``PERIOD_S`` (temperatures fall as the phone cools; the simulated
genie heats it through the emulator's socket). Each file is replaced whole (write, rename),
so a reader sees an old or a new value, never half of one. One zone's ``temp`` is mode 000:
reading it fails, as some zones do on real phones.

/proc is the phone's own procfs (its pid namespace); four of its files are replaced by the
emulator's (bound over them): ``version`` (says SIMULATED), ``meminfo`` (the phone's RAM,
``--ram-mb``), ``cpuinfo`` (its SoC) and ``sys/kernel/random/boot_id`` (a new one at each
start of this phone: otherwise every emulated phone would report the host's, and two phones
or a phone and its restart could not be told apart).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from pathlib import Path

from qwenchat.emulator.config import EmulatorConfig
from qwenchat.emulator.thermal import ZONES, ThermalModel

log = logging.getLogger("qwenchat.emulator")

PERIOD_S = 0.2
# Battery and power state; `state/battery.json` (outside the phone's fs) may override them.
DEFAULT_BATTERY = {"level": 87, "status": "Charging", "usb": True, "ac": False, "power_save": False}
BOOT_ID = "sys/kernel/random/boot_id"
PROC_VERSION = "Linux version 6.6.30-android15-qwenchat-SIMULATED (qwenchat emulator)\n"


def _replace(path: Path, text: str, mode: int = 0o444) -> None:
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class _Writer:
    """Replaces a file only when its text changes: a phone at rest costs no writes."""

    def __init__(self) -> None:
        self._last: dict[Path, tuple[str, int]] = {}

    def __call__(self, path: Path, text: str, mode: int = 0o444) -> None:
        if self._last.get(path) == (text, mode):
            return
        _replace(path, text, mode)
        self._last[path] = (text, mode)


def meminfo(ram_mb: int) -> str:
    total_kb = ram_mb * 1024
    lines = [
        ("MemTotal", total_kb),
        ("MemFree", int(total_kb * 0.08)),
        ("MemAvailable", int(total_kb * 0.42)),
        ("Buffers", 6_144),
        ("Cached", int(total_kb * 0.30)),
        ("SwapTotal", 8_388_604),
        ("SwapFree", 6_291_452),
    ]
    return "".join(f"{k + ':':<16}{v:>8} kB\n" for k, v in lines)


def cpuinfo(soc: str) -> str:
    cores = "".join(
        f"processor\t: {i}\nBogoMIPS\t: 38.40\nCPU implementer\t: 0x51\n\n" for i in range(8)
    )
    return cores + f"Hardware\t: Qualcomm Technologies, Inc {soc} (SIMULATED)\n"


class SysFiles:
    def __init__(self, config: EmulatorConfig, thermal: ThermalModel) -> None:
        self.config = config
        self.thermal = thermal
        self.sys_dir = config.state_dir / "sys"
        self.proc_dir = config.state_dir / "proc"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the thread and a heat report may update at once
        self._write = _Writer()

    @property
    def proc_overlays(self) -> dict[str, Path]:
        overlays = {name: self.proc_dir / name for name in ("version", "meminfo", "cpuinfo")}
        overlays[BOOT_ID] = self.proc_dir / "boot_id"
        return overlays

    def battery(self) -> dict:
        state = dict(DEFAULT_BATTERY)
        try:
            state.update(json.loads((self.config.state_dir / "battery.json").read_text()))
        except (OSError, ValueError):
            pass
        return state

    def write_static(self) -> None:
        self.proc_dir.mkdir(parents=True, exist_ok=True)
        _replace(self.proc_dir / "version", PROC_VERSION)
        _replace(self.proc_dir / "meminfo", meminfo(self.config.ram_mb))
        _replace(self.proc_dir / "cpuinfo", cpuinfo(self.config.soc))
        _replace(self.proc_dir / "boot_id", f"{uuid.uuid4()}\n")  # a new boot, a new id
        for i, zone in enumerate(ZONES):
            d = self.sys_dir / "class" / "thermal" / f"thermal_zone{i}"
            d.mkdir(parents=True, exist_ok=True)
            _replace(d / "type", f"{zone.type}\n")
        for d in ("class/power_supply/battery", "class/power_supply/usb",
                  "qwenchat/settings/global"):  # fmt: skip
            (self.sys_dir / d).mkdir(parents=True, exist_ok=True)
        _replace(self.sys_dir / "class/power_supply/battery/present", "1\n")
        self.update()

    def update(self) -> None:
        with self._lock:
            self._update()

    def _update(self) -> None:
        temps = self.thermal.temperatures_c()
        for i, temp in enumerate(temps):
            path = self.sys_dir / "class" / "thermal" / f"thermal_zone{i}" / "temp"
            if temp is None:
                self._write(path, "", 0o000)  # unreadable, as some zones are on real phones
            else:
                self._write(path, f"{round(temp * 1000)}\n")
        battery = self.battery()
        names = [z.type for z in ZONES]
        battery_c = temps[names.index("battery")] if "battery" in names else None
        ps = self.sys_dir / "class" / "power_supply"
        self._write(ps / "battery" / "capacity", f"{int(battery['level'])}\n")
        self._write(ps / "battery" / "status", f"{battery['status']}\n")
        self._write(ps / "battery" / "temp", f"{round((battery_c or 30.0) * 10)}\n")
        self._write(ps / "usb" / "online", "1\n" if battery["usb"] else "0\n")
        low_power = "1\n" if battery.get("power_save") else "0\n"
        self._write(self.sys_dir / "qwenchat" / "settings" / "global" / "low_power", low_power)

    def start(self) -> None:
        self.write_static()
        self._thread = threading.Thread(target=self._loop, name="phone-sysfiles", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(PERIOD_S):
            try:
                self.update()
            except OSError as exc:  # a full host disk must not kill the phone
                log.warning("cannot update the phone's /sys files: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
