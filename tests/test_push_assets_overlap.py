"""Where the transport can run two streams at once (Google's adb server), a push hashes file N
on the phone while file N+1 is on its way; where asked not to, or where it cannot, it waits
for each check. Judged by the emulated phone's own command log: a `sha256sum` whose end comes
after the next file's SEND began ran beside it."""

from __future__ import annotations

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.push import push_assets
from qwenchat.emulator.commandlog import read_records
from qwenchat.layout import PhoneLayout

WORK = "/data/local/tmp/qwenchat"


@pytest.fixture
def plan(synthetic_bundle):
    return plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")


def checks_beside_a_send(records: list[dict]) -> int:
    """SEND requests that arrived while a sha256sum command was still running."""
    running: set[int] = set()
    beside = 0
    for record in records:
        if record.get("kind") in ("shell", "exec") and "sha256sum" in record.get("what", ""):
            running.add(record["id"])
        elif record.get("kind") == "end":
            running.discard(record.get("id"))
        elif record.get("kind") == "sync" and record.get("request") == "SEND" and running:
            beside += 1
    return beside


@pytest.mark.google_adb
def test_the_adb_server_hashes_beside_the_next_send_unless_told_not_to(
    server_device, emulator, plan
):
    assert server_device.concurrent_streams
    report = push_assets(server_device, plan, PhoneLayout(WORK))  # the default: overlap
    assert report.files_sent == report.phone_files_hashed == len(plan.files)
    assert checks_beside_a_send(read_records(emulator.root)) > 0

    other = f"{WORK}-serial"
    before = len(read_records(emulator.root))
    report = push_assets(server_device, plan, PhoneLayout(other), overlap=False)
    assert report.files_sent == report.phone_files_hashed == len(plan.files)
    later = read_records(emulator.root)[before:]
    assert later and checks_beside_a_send(later) == 0

