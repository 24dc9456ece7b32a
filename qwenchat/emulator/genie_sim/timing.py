"""How long the simulated phone takes: a device profile scaled by the emulator's time scale.

Every phase sleeps until an ABSOLUTE deadline (so per-token sleeps never drift) and is then
measured on the host clock: the profile JSON reports what really happened, so at time scale
0.1 the emulated phone really is ten times faster and its numbers say so.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class DeviceProfile:
    init_ms: float
    prefill_chunk_ms: float
    chunk_tokens: int
    decode_tok_s: float
    free_ms: float = 40.0
    jitter_pct: float = 0.0
    name: str = ""

    @classmethod
    def from_dict(cls, data: dict, base: DeviceProfile | None = None) -> DeviceProfile:
        merged = {} if base is None else dict(base.__dict__)
        for key in cls.__dataclass_fields__:
            if key in data:
                merged[key] = data[key]
        return cls(
            init_ms=float(merged["init_ms"]),
            prefill_chunk_ms=float(merged["prefill_chunk_ms"]),
            chunk_tokens=int(merged["chunk_tokens"]),
            decode_tok_s=float(merged["decode_tok_s"]),
            free_ms=float(merged.get("free_ms", 40.0)),
            jitter_pct=float(merged.get("jitter_pct", 0.0)),
            name=str(merged.get("name", "")),
        )


def default_profile() -> DeviceProfile:
    text = (
        resources.files("qwenchat.emulator")
        .joinpath("data", "default_genie_profile.json")
        .read_text()
    )
    return DeviceProfile.from_dict(json.loads(text))


def load_profile(overrides: dict | None) -> DeviceProfile:
    """The default profile, overridden key by key by ``overrides`` (a profile's JSON)."""
    base = default_profile()
    if not overrides:
        return base
    return DeviceProfile.from_dict(overrides, base)


@dataclass
class Pacer:
    """Scaled, optionally jittered durations (host seconds) for one process."""

    profile: DeviceProfile
    time_scale: float
    jitter: bool
    rng: random.Random

    def _factor(self) -> float:
        if not self.jitter or self.profile.jitter_pct <= 0:
            return 1.0
        j = self.profile.jitter_pct / 100.0
        return 1.0 + self.rng.uniform(-j, j)

    def init_s(self) -> float:
        return self.profile.init_ms / 1000.0 * self.time_scale * self._factor()

    def chunks(self, n_tokens: int) -> int:
        return max(1, math.ceil(n_tokens / self.profile.chunk_tokens))

    def prefill_s(self, n_tokens: int) -> float:
        return (
            self.chunks(n_tokens)
            * self.profile.prefill_chunk_ms
            / 1000.0
            * self.time_scale
            * self._factor()
        )

    def token_s(self) -> float:
        """Seconds per decoded token for this run (one jitter draw per run, like a trial)."""
        return self.time_scale / self.profile.decode_tok_s * self._factor()

    def free_s(self) -> float:
        return self.profile.free_ms / 1000.0 * self.time_scale * self._factor()


def sleep_until(deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(left)


def process_start_monotonic(fallback: float) -> float:
    """When this process was started, on the time.monotonic() clock.

    /proc/self/stat field 22 is the start time in clock ticks since boot (CLOCK_BOOTTIME);
    the offset between that clock and the monotonic one converts it. Falls back to
    ``fallback`` (a timestamp taken first thing in __main__) when /proc is unavailable.
    """
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        start_ticks = int(fields[19])  # field 22 overall; fields[0] is field 3
        start_boot = start_ticks / os.sysconf("SC_CLK_TCK")
        now_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        now_mono = time.monotonic()
        start = now_mono - (now_boot - start_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return fallback
    # Clock-tick resolution is 10 ms; never report a start after our own first timestamp,
    # nor one absurdly early (a PID-namespace oddity).
    if start > fallback or fallback - start > 30.0:
        return fallback
    return start
