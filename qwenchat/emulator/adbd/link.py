"""The cable between host and phone: a token bucket per direction.

``usb2``/``usb3`` make transfers take as long as over a real cable (config.LINK_SPEEDS_BPS);
``unlimited`` leaves loopback speed. One bucket per direction per emulator, as one cable
carries every connection.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    # A burst of one max-size packet: credit for the host-side gap between two packets of
    # a stop-and-wait transfer, so pushes reach the cable's rate (a smaller bucket would
    # charge that gap on top of the wire time and give ~95 MB/s on usb3, not ~120).
    def __init__(self, rate_bps: float | None, burst_bytes: int = 1024 * 1024) -> None:
        self.rate = rate_bps
        self.burst = burst_bytes
        self._tokens = float(burst_bytes)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def consume(self, n: int) -> None:
        """Block until ``n`` bytes may pass; larger than the burst is fine (goes into debt)."""
        if not self.rate or n <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class Link:
    def __init__(self, rate_bps: float | None) -> None:
        self.rate_bps = rate_bps
        self.to_phone = TokenBucket(rate_bps)
        self.to_host = TokenBucket(rate_bps)
