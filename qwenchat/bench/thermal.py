"""The phone's thermal and power state, and waiting for it to cool between trials.

Zones are read over one shell round trip from ``/sys/class/thermal/thermal_zone*/``; a zone
whose ``temp`` cannot be read (EINVAL on some real zones) is kept as unreadable, not as zero.
Later trials of a 7B model lose 20-30% when the phone is left to heat up, so the sweep
waits until the hottest readable zone is back near where the run started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from qwenchat.device.base import Device
from qwenchat.errors import UsageError

_SEP = "__qwenchat_thermal__"
_ZONES_CMD = (
    "for z in /sys/class/thermal/thermal_zone*; do "
    'echo "$z|$(cat $z/type 2>/dev/null)|$(cat $z/temp 2>/dev/null)"; done'
)
_POWER_CMD = (
    f"echo {_SEP}; cat /sys/class/power_supply/battery/capacity 2>/dev/null; "
    f"echo {_SEP}; cat /sys/class/power_supply/battery/status 2>/dev/null; "
    f"echo {_SEP}; settings get global low_power 2>/dev/null"
)


@dataclass(frozen=True)
class ThermalReading:
    zones: dict[str, float | None]  # zone type -> °C (None: unreadable)
    at: float = field(default_factory=time.time)

    @property
    def hottest_c(self) -> float | None:
        temps = [t for t in self.zones.values() if t is not None]
        return max(temps) if temps else None

    def as_json(self) -> dict:
        return {"zones": self.zones, "hottest_c": self.hottest_c, "at": self.at}

    @classmethod
    def from_json(cls, data: dict | None) -> ThermalReading | None:
        if not data:
            return None
        zones = {str(k): (None if v is None else float(v)) for k, v in (data.get("zones") or {}).items()}
        return cls(zones, float(data.get("at") or 0.0))


@dataclass(frozen=True)
class PowerState:
    battery_level: int | None
    charging: bool | None
    power_save: bool | None

    def as_json(self) -> dict:
        return {
            "battery_level": self.battery_level,
            "charging": self.charging,
            "power_save": self.power_save,
        }

    @classmethod
    def from_json(cls, data: dict | None) -> PowerState | None:
        if not data:
            return None
        return cls(data.get("battery_level"), data.get("charging"), data.get("power_save"))


def parse_zones(text: str) -> dict[str, float | None]:
    zones: dict[str, float | None] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3 or "thermal_zone" not in parts[0]:
            continue
        path, kind, raw = parts
        name = kind.strip() or path.rsplit("/", 1)[-1]
        if name in zones:  # two zones of one type: keep both
            name = f"{name}#{path.rsplit('thermal_zone', 1)[-1]}"
        raw = raw.strip()
        try:
            value = int(raw)
        except ValueError:
            zones[name] = None
            continue
        # Most zones report millidegrees; a few old ones report whole degrees.
        zones[name] = value / 1000.0 if abs(value) >= 200 else float(value)
    return zones


def read_thermal(device: Device) -> ThermalReading:
    result = device.shell(_ZONES_CMD, timeout=30)
    return ThermalReading(parse_zones(result.text))


def parse_power(text: str) -> PowerState:
    parts = [p.strip() for p in text.split(_SEP)][1:] + ["", "", ""]
    level = int(parts[0]) if parts[0].isdigit() else None
    status = parts[1].lower()
    charging = None if not status else status in ("charging", "full")
    low = parts[2]
    power_save = None if low not in ("0", "1") else low == "1"
    return PowerState(level, charging, power_save)


def read_power(device: Device) -> PowerState:
    return parse_power(device.shell(_POWER_CMD, timeout=30).text)


@dataclass
class CooldownPolicy:
    """``auto``: wait until the hottest zone is within ``margin_c`` of the run's start;
    ``seconds``: a fixed pause; ``max_temp_c``: never start a trial above it."""

    mode: str = "auto"  # "auto" | "fixed" | "off"
    seconds: float = 0.0
    margin_c: float = 2.0
    max_wait_s: float = 300.0
    max_temp_c: float | None = None
    poll_s: float = 1.0

    @classmethod
    def parse(cls, text: str, *, max_temp_c: float | None = None, max_wait_s: float = 300.0):

        value = text.strip().lower()
        if value == "auto":
            return cls("auto", max_temp_c=max_temp_c, max_wait_s=max_wait_s)
        try:
            seconds = float(value.rstrip("s"))
            if seconds != seconds or seconds in (float("inf"), float("-inf")):
                raise ValueError("nan or inf waits forever or never")
        except ValueError:
            raise UsageError(
                f"--cooldown {text!r} is neither 'auto' nor a number of seconds",
                hint="Use --cooldown auto, --cooldown 0 or --cooldown 30.",
            ) from None
        if seconds < 0:
            raise UsageError(f"--cooldown {text} is negative", hint="Use 0 to never wait.")
        return cls("fixed" if seconds > 0 else "off", seconds, max_temp_c=max_temp_c,
                   max_wait_s=max_wait_s)

    def as_json(self) -> dict:
        return {
            "mode": self.mode,
            "seconds": self.seconds,
            "margin_c": self.margin_c,
            "max_wait_s": self.max_wait_s,
            "max_temp_c": self.max_temp_c,
        }


@dataclass(frozen=True)
class CooldownResult:
    waited_s: float
    reached: bool  # False: the bound ran out before the target was met
    start_c: float | None
    end_c: float | None
    reason: str  # "none", "fixed", "auto", "max-temp"

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> CooldownResult | None:
        if not data:
            return None
        return cls(
            float(data.get("waited_s") or 0.0), bool(data.get("reached", True)),
            data.get("start_c"), data.get("end_c"), str(data.get("reason") or "none"),
        )


def cool_down(
    device: Device,
    policy: CooldownPolicy,
    baseline_c: float | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[float, float | None], None] | None = None,
) -> CooldownResult:
    """Wait as the policy says before the next trial; returns what happened."""
    started = time.monotonic()
    first = read_thermal(device).hottest_c
    if policy.mode == "fixed":
        sleep(policy.seconds)
    target: float | None = None
    reason = "fixed" if policy.mode == "fixed" else "none"
    if policy.mode == "auto" and baseline_c is not None:
        target = baseline_c + policy.margin_c
        reason = "auto"
    if policy.max_temp_c is not None:
        target = policy.max_temp_c if target is None else min(target, policy.max_temp_c)
        if reason == "none":
            reason = "max-temp"
    current = first if policy.mode != "fixed" else read_thermal(device).hottest_c
    reached = True
    if target is not None:
        while current is not None and current > target:
            waited = time.monotonic() - started
            if waited >= policy.max_wait_s:
                reached = False
                break
            if on_wait is not None:
                on_wait(waited, current)
            sleep(min(policy.poll_s, policy.max_wait_s - waited))
            current = read_thermal(device).hottest_c
    return CooldownResult(time.monotonic() - started, reached, first, current, reason)
