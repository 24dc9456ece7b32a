"""Issue 31, the push: the real peak of free space, a full phone as its own failure, the
manifest and the journal checked with SHA-256 like every file, and no internal words.

Failure modes, each with its test:
- the space check counts one ``.partial`` at a time while, over the adb server, file N's
  (being hashed) and file N+1's are on the phone together: the push dies mid-way after the
  manifest was removed (``test_peak_with_overlap_*``, ``test_a_tight_phone_over_the_server_*``);
- a phone that fills up during a push is reported as a lost connection, exit 75, "run the
  same command again" (``test_a_phone_that_fills_up_mid_push_*``);
- manifest.json or the push journal damaged on the way lands on the phone as it arrived
  (``test_a_damaged_manifest_*``, ``test_a_damaged_journal_*``);
- the lock script's own markers (``__mkdir_failed__``) reach the user
  (``test_no_internal_words_*``).

Oracles: hand-worked byte counts; the phone's own files and its adbd's log of SEND requests;
the phone's bytes compared with the host's JSON; exception classes and exit codes.
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from test_push_assets_faults import (
    WORK,
    SwitchAt,
    assert_phone_is,
    log_mark,
    on_phone,
    phone_with_a,  # noqa: F401 - a fixture
    plan,  # noqa: F401 - a fixture
    sends,
)

from qwenchat.assets.bundle import BundleFile, BundlePlan
from qwenchat.assets.lock import PhoneLock
from qwenchat.assets.phone_state import PhoneState, bundle_integrity, read_phone_state
from qwenchat.assets.push import PushProgress, _peak_need, push_assets
from qwenchat.errors import DeviceCommandError, DeviceStorageError, PhoneFullError
from qwenchat.layout import PhoneLayout

MB = 1_000_000


def f(remote: str, size: int) -> BundleFile:
    return BundleFile(local=None, data=b"", remote=remote, mode=0o644, size=size)


# ---------------------------------------------------------------- 1. the real peak


def test_peak_with_overlap_counts_two_partials_beside_their_old_copies():
    # Two 32 MB files replacing two 32 MB files (the case): one at a time the phone
    # needs 32 MB more at most; with file 1 still being hashed while file 2 arrives, 64 MB.
    order = [f("a", 32 * MB), f("b", 32 * MB)]
    old = PhoneState(manifest=None, sizes={"a": 32 * MB, "b": 32 * MB}, partial_sizes={},
                     free_bytes=None)  # fmt: skip
    assert _peak_need(order, old) == 32 * MB
    assert _peak_need(order, old, overlap=True) == 64 * MB


def test_peak_with_overlap_hand_worked():
    # a: 100 replaces 80; b: 50 replaces 40; c: 10, new.
    # One at a time: a 100 | then +20, b 20+50=70 | then +30, c 30+10=40 | end 40 -> 100.
    # Overlapped: b arrives while a.partial (100) and old a (80) are there: 0+100+50=150;
    # c arrives while b.partial (50), old b (40), a done (+20): 20+50+10=80 -> 150.
    order = [f("a", 100), f("b", 50), f("c", 10)]
    old = PhoneState(manifest=None, sizes={"a": 80, "b": 40}, partial_sizes={}, free_bytes=None)
    assert _peak_need(order, old) == 100
    assert _peak_need(order, old, overlap=True) == 150
    # Shrinking files: a 10 replaces 300, b 10 replaces 300: overlapped, b arrives with a's
    # partial beside old a: 0 + 10 + 10 = 20; one at a time 10.
    shrink = PhoneState(manifest=None, sizes={"a": 300, "b": 300}, partial_sizes={},
                        free_bytes=None)  # fmt: skip
    assert _peak_need([f("a", 10), f("b", 10)], shrink) == 10
    assert _peak_need([f("a", 10), f("b", 10)], shrink, overlap=True) == 20


def _plan_of(tmp_path, seed: int, size: int) -> BundlePlan:
    rng = random.Random(seed)
    files = []
    for name in ("a.bin", "b.bin"):
        path = tmp_path / f"{seed}-{name}"
        path.write_bytes(rng.randbytes(size))
        files.append(BundleFile(local=path, data=None, remote=f"bundle/{name}", mode=0o644,
                                size=size))  # fmt: skip
    return BundlePlan(files=files, soc="SM8750", arch="v79")


def _leave_free(dev, layout: PhoneLayout, held: BundlePlan, free: int) -> None:
    """Write a filler on the phone so that ``free`` bytes stay free for the work dir."""
    now = read_phone_state(dev, layout, [f.remote for f in held.files]).free_bytes
    assert now is not None and now > free
    filler = (now - free) // 4096 * 4096
    assert dev.shell(f"head -c {filler} /dev/zero > /data/local/tmp/filler-{free}").ok
    left = read_phone_state(dev, layout, [f.remote for f in held.files]).free_bytes
    assert abs(left - free) < 256 * 1024, (left, free)


@pytest.mark.google_adb
def test_a_tight_phone_over_the_server_is_pushed_one_file_at_a_time(
    emulator_factory, adb_key, tmp_path
):
    """The issue's case scaled down (45 MB free, two 32 MB files): room for one new copy
    (1.5 files), not two. The overlapped push would hold two .partial files beside both old
    copies and die mid-way with the manifest gone; one file at a time it finishes."""
    from fixtures_device import google_adb

    from qwenchat.device.server import ServerDevice

    size = 12 * MB
    emu = emulator_factory(authorized_keys=[adb_key], free_mb=96)
    google_adb("start-server")
    assert "connected" in google_adb("connect", emu.address).stdout
    dev = ServerDevice(emu.address)
    layout = PhoneLayout(WORK)
    try:
        _wait_listed(google_adb, emu.address)
        a, b = _plan_of(tmp_path, 1, size), _plan_of(tmp_path, 2, size)
        push_assets(dev, a, layout)
        _leave_free(dev, layout, a, size * 3 // 2)
        report = push_assets(dev, b, layout)
        assert report.files_sent == 2
        assert any("one file's new copy at a time" in note for note in report.notes)
        assert_phone_is(emu, b)
        # Less room than one new copy: refused before anything changed; A stays whole.
        _leave_free(dev, layout, b, size * 3 // 4)
        with pytest.raises(DeviceStorageError) as info:
            push_assets(dev, a, layout)
        assert info.value.message.startswith("needs 12.")
        assert_phone_is(emu, b)
    finally:
        dev.close()
        google_adb("disconnect", emu.address)


def _wait_listed(google_adb, address: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [line.split() for line in google_adb("devices").stdout.splitlines()[1:]]
        if [address, "device"] in rows:
            return
        time.sleep(0.1)
    raise AssertionError(f"adb never listed {address} as a device")


# ---------------------------------------------------------------- 2. a full phone


class FillAt(PushProgress):
    """When ``file`` is about to be sent, something else on the phone fills its storage."""

    def __init__(self, dev, file: str) -> None:  # noqa: ANN001
        self.dev, self.file, self.filled = dev, file, False

    def file_started(self, remote: str, size: int) -> None:
        if remote == self.file and not self.filled:
            self.filled = True
            self.dev.shell("cat /dev/zero > /data/local/tmp/filler", timeout=120)


def test_a_phone_that_fills_up_mid_push_is_a_full_phone_not_a_lost_one(
    bundled_phone, synthetic_bundle, tmp_path
):
    from qwenchat.assets.bundle import plan_bundle

    emu, dev = bundled_phone(push=False, free_mb=64)
    bundle = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")
    second = bundle.files[1].remote
    with pytest.raises(PhoneFullError) as info:
        push_assets(dev, bundle, PhoneLayout(WORK), overlap=False, progress=FillAt(dev, second))
    err = info.value
    assert err.exit_code == 1  # a refused action: not 75 ("the phone was lost")
    assert "\n" not in err.message and "connection" not in err.message
    assert err.message.startswith(
        f"the phone's storage is full (No space left on device, while sending {second})"
    )
    assert "`qwenchat clean`" in err.hint and "same command again" in err.hint
    assert "Biggest now: /data/local/tmp/filler " in err.hint, err.hint  # what to remove
    # After freeing space, the same push finishes what it started.
    assert dev.shell("rm /data/local/tmp/filler").ok
    push_assets(dev, bundle, PhoneLayout(WORK), overlap=False)
    assert_phone_is(emu, bundle)


# ---------------------------------------------------------------- 3. manifest and journal


def test_a_damaged_manifest_is_caught_by_sha256_and_sent_again(
    emulator, device, phone_fault, plan  # noqa: F811
):
    push_assets(device, plan, PhoneLayout(WORK))
    # The bundle's files stay, the manifest goes: the next push only writes the manifest,
    # and the phone flips a byte of it on the way.
    assert device.shell(f"rm {WORK}/manifest.json").ok
    since = log_mark(emulator)
    phone_fault(emulator, "corrupt-bytes", 1)
    report = push_assets(device, plan, PhoneLayout(WORK))
    assert report.files_sent == 0
    assert sends(emulator, "manifest.json", since) == 2  # damaged once, sent again
    manifest = json.loads(on_phone(emulator, "manifest.json").read_text())
    want = {f.remote: hashlib.sha256(f.local.read_bytes() if f.local else f.data).hexdigest()
            for f in plan.files}  # fmt: skip
    assert {name: entry["sha256"] for name, entry in manifest["files"].items()} == want
    assert not on_phone(emulator, "manifest.json.partial").exists()
    assert bundle_integrity(device, PhoneLayout(WORK), deep=True).ok


def test_a_damaged_journal_is_caught_before_the_old_bundle_is_touched(
    emulator, device, phone_fault, phone_with_a  # noqa: F811
):
    plan_a, plan_b, since = phone_with_a
    damage = SwitchAt(emulator, phone_fault, "corrupt-bytes", 1, status="taking the phone's")
    push_assets(device, plan_b, PhoneLayout(WORK), overlap=False, progress=damage)
    assert damage.thrown
    assert sends(emulator, ".push-journal", since) == 2
    assert_phone_is(emulator, plan_b)
    assert not on_phone(emulator, ".push-journal").exists()
    assert not on_phone(emulator, ".push-journal.partial").exists()


# ---------------------------------------------------------------- 8. no internal words


def test_no_internal_words_when_the_lock_cannot_be_made(emulator, device, plan):  # noqa: F811
    layout = PhoneLayout(WORK)
    push_assets(device, plan, layout)
    lock = PhoneLock(device, layout)
    lock.acquire(read_phone_state(device, layout, []).lock)
    try:
        # The work dir becomes unwritable under a held lock: the guard cannot be made.
        assert device.shell(f"chmod 555 {WORK}").ok
        with pytest.raises(DeviceCommandError) as info:
            lock.run("true", "renaming bundle/x into place")
    finally:
        device.shell(f"chmod 755 {WORK}")
        lock.release()
    message = info.value.message
    assert "__" not in message and "mkdir_failed" not in message
    assert message == (
        f"renaming bundle/x into place: cannot create the push lock in {WORK} on the phone "
        f"(mkdir: '{WORK}/.push-lock.guard': Permission denied)"
    ), message
