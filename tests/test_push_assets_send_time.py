"""The push report's send time is a part of the push's own time, which is a part of the time
the test itself measured around push_assets (one monotonic clock: an inner interval can never
be longer than the one around it)."""

from __future__ import annotations

import time

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.push import push_assets
from qwenchat.layout import PhoneLayout


@pytest.fixture
def plan(synthetic_bundle):
    return plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")


def test_send_time_lies_within_the_push_and_the_callers_clock(device, plan):
    layout = PhoneLayout("/data/local/tmp/qwenchat")
    for _ in ("first push", "unchanged push"):
        start = time.monotonic()
        report = push_assets(device, plan, layout)
        wall = time.monotonic() - start
        assert 0.0 <= report.send_seconds <= report.seconds <= wall
