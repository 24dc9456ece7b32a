"""One way to run a Genie query on the phone and get one typed record back.

Chat, bench and doctor's probe all go through an ``Engine`` (``engine.py``): today
``ProcessEngine`` (one genie-t2t-run per query); a long-lived dialog later, behind the same
interface. The record (``record.py``) holds the stdout events with host timestamps, exit
code, stderr, Genie's profile and the failure diagnosis; features only interpret it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwenchat.errors import UsageError
from qwenchat.runner.phone_bundle import PhoneBundle
from qwenchat.runner.process import ProcessEngine

if TYPE_CHECKING:
    from qwenchat.device.base import Device
    from qwenchat.layout import PhoneLayout
    from qwenchat.runner.engine import Engine


def open_engine(device: Device, layout: PhoneLayout | None = None, kind: str = "process") -> Engine:
    """The engine ``kind`` for the bundle pushed in ``layout`` on ``device``."""

    bundle = PhoneBundle(device, layout)
    if kind == "process":
        engine = ProcessEngine(bundle)
        engine.sweep_stale()
        return engine
    raise UsageError(f"unknown engine {kind!r}", hint="Use process.")
