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


def test_send_time_of_a_quick_repair_is_a_duration_not_a_clock_reading(device, plan):
    """One small file missing on the phone: the push sends just that file, in well under a
    second; its send time is a short duration too (a clock reading, or a ratio of two, would
    be about the machine's uptime or 1.0)."""
    layout = PhoneLayout("/data/local/tmp/qwenchat")
    push_assets(device, plan, layout)
    assert device.shell(f"rm {layout.work_dir}/bin/genie-app").ok
    start = time.monotonic()
    report = push_assets(device, plan, layout)
    wall = time.monotonic() - start
    assert 0.0 < report.send_seconds <= report.seconds <= wall
    if wall < 0.9:  # a host too busy for a quick push cannot judge a ratio near 1.0
        assert report.send_seconds < 0.9
