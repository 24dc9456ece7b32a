"""Issue 16: the phone holds the old bundle or the new one as a whole, and
``bundle_integrity`` (what doctor and run call) refuses anything else with one line.

The emulated phone is real underneath (its files are read straight from its folder on the
host, never through qwenchat), and the Ctrl-C is a real SIGINT sent mid-file.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest
from fixtures_bundle import bundle_variant

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.phone_state import bundle_integrity
from qwenchat.assets.push import PushInterruptedError, PushProgress, push_assets
from qwenchat.device.direct import DirectDevice
from qwenchat.errors import BundleError
from qwenchat.layout import PhoneLayout

WORK = "/data/local/tmp/qwenchat"
BINS = [f"bundle/weight_sharing_model_{n}_of_4.serialized.bin" for n in (1, 2, 3, 4)]


def on_phone(emulator, rel: str):
    return emulator.config.fs_root / WORK.lstrip("/") / rel


def phone_bytes(emulator, rel: str) -> bytes | None:
    path = on_phone(emulator, rel)
    return path.read_bytes() if path.exists() else None


def plan_bytes(plan, rel: str) -> bytes:
    f = plan.file(rel)
    return f.data if f.data is not None else f.local.read_bytes()


def assert_phone_is(emulator, plan) -> None:
    for f in plan.files:
        assert phone_bytes(emulator, f.remote) == plan_bytes(plan, f.remote), f.remote
    manifest = json.loads(on_phone(emulator, "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(f.remote for f in plan.files)
    for f in plan.files:
        assert manifest["files"][f.remote]["sha256"] == hashlib.sha256(
            plan_bytes(plan, f.remote)
        ).hexdigest()


class CtrlCAt(PushProgress):
    """Presses Ctrl-C (a real SIGINT) once ``remote`` has started to arrive."""

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self.current = ""
        self.pressed = False

    def file_started(self, remote: str, size: int) -> None:
        self.current = remote

    def advance(self, nbytes: int) -> None:
        if self.current == self.remote and not self.pressed:
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def two_bundles(synthetic_bundle, tmp_path):
    """Bundle A (the session's) and bundle B (same names and sizes, other bytes)."""
    b = bundle_variant(tmp_path / "bundle-b", synthetic_bundle, seed=2)
    plan_a = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")
    plan_b = plan_bundle(b, synthetic_bundle.qairt, "SM8750")
    assert [f.remote for f in plan_a.files] == [f.remote for f in plan_b.files]
    assert plan_bytes(plan_a, BINS[0]) != plan_bytes(plan_b, BINS[0])
    return plan_a, plan_b


def interrupted_push(emulator, plan, remote: str) -> None:
    dev = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    try:
        with pytest.raises(PushInterruptedError) as info:
            push_assets(dev, plan, PhoneLayout(WORK), progress=CtrlCAt(remote), overlap=False)
        assert info.value.exit_code == 130
    finally:
        dev.close()


def fresh_device(emulator):
    return DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)


@pytest.mark.parametrize("stop_at", [0, 2, 3])
def test_ctrl_c_while_pushing_another_bundle_leaves_no_whole_looking_mix(
    emulator, device, two_bundles, stop_at
):
    plan_a, plan_b = two_bundles
    push_assets(device, plan_a, PhoneLayout(WORK))
    assert bundle_integrity(device, PhoneLayout(WORK)).ok

    interrupted_push(emulator, plan_b, BINS[stop_at])

    # A real mix is on the phone: bins before the stop are B's, the rest still A's...
    for i, rel in enumerate(BINS):
        want = plan_b if i < stop_at else plan_a
        assert phone_bytes(emulator, rel) == plan_bytes(want, rel), rel
    # ...and nothing calls it whole: no manifest, and the check doctor and run use refuses it.
    assert not on_phone(emulator, "manifest.json").exists()
    dev = fresh_device(emulator)
    try:
        verdict = bundle_integrity(dev, PhoneLayout(WORK))
        assert not verdict.ok and verdict.state == "interrupted"
        assert verdict.message.startswith(f"the bundle in {WORK} is incomplete: a push of ")
        assert "\n" not in verdict.message
        with pytest.raises(BundleError, match="incomplete"):
            verdict.require()

        # Running the same push again finishes B; the bins B already placed are vouched for
        # by the journal (neither sent nor hashed again), A's leftovers are hashed and replaced.
        report = push_assets(dev, plan_b, PhoneLayout(WORK))
    finally:
        dev.close()
    assert report.sent == BINS[stop_at:]
    assert report.phone_files_hashed == 2 * (4 - stop_at)
    assert_phone_is(emulator, plan_b)


def test_switching_back_after_an_interrupted_push_gives_the_old_bundle_whole(
    emulator, device, two_bundles
):
    plan_a, plan_b = two_bundles
    push_assets(device, plan_a, PhoneLayout(WORK))
    interrupted_push(emulator, plan_b, BINS[2])
    dev = fresh_device(emulator)
    try:
        report = push_assets(dev, plan_a, PhoneLayout(WORK))
        verdict = bundle_integrity(dev, PhoneLayout(WORK), deep=True)
    finally:
        dev.close()
    assert report.sent == BINS[:2]  # only the two bins B had replaced go back
    assert_phone_is(emulator, plan_a)
    assert verdict.ok and verdict.state == "whole" and "SHA-256 verified" in verdict.message


def test_integrity_names_the_bundle_and_catches_damage(emulator, device, synthetic_bundle):
    layout = PhoneLayout(WORK)
    fresh = bundle_integrity(device, layout)
    assert (fresh.ok, fresh.state) == (False, "absent")
    assert fresh.message == f"no bundle on the phone ({WORK}/manifest.json is missing)"

    plan = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")
    push_assets(device, plan, layout)
    manifest = json.loads(on_phone(emulator, "manifest.json").read_text())
    # The bundle id, recomputed here from the phone's own files.
    listing = "".join(
        f"{name}\0{len(phone_bytes(emulator, name))}\0"
        f"{hashlib.sha256(phone_bytes(emulator, name)).hexdigest()}\n"
        for name in sorted(manifest["files"])
    )
    bundle_id = hashlib.sha256(listing.encode()).hexdigest()
    assert manifest["bundle_id"] == bundle_id and manifest["model"] == "qwen2-7b-instruct"
    whole = bundle_integrity(device, layout)
    assert whole.ok and whole.message.startswith(
        f"bundle {bundle_id[:12]} for qwen2-7b-instruct: 16 files, "
    )
    assert whole.message.endswith(" GB, sizes match")
    assert whole.require().bundle_id == bundle_id

    # Same size, one byte changed: only the deep check sees it.
    path = on_phone(emulator, BINS[1])
    data = bytearray(path.read_bytes())
    data[4096] ^= 0x01
    path.write_bytes(bytes(data))
    assert bundle_integrity(device, layout).ok
    deep = bundle_integrity(device, layout, deep=True)
    assert (deep.ok, deep.state) == (False, "damaged")
    assert deep.message == (
        "the phone's bundle does not match its manifest: "
        f"{BINS[1]} has another SHA-256 than the manifest's"
    )

    # Truncated: the cheap check sees it.
    path.write_bytes(bytes(data[:1000]))
    short = bundle_integrity(device, layout)
    assert short.state == "damaged" and short.message == (
        "the phone's bundle does not match its manifest: "
        f"{BINS[1]} is 1,000 bytes, the manifest says {len(data):,}"
    )


def test_integrity_refuses_the_mix_an_older_qwenchat_left(emulator, device, two_bundles):
    """Before this fix an interrupted push rewrote manifest.json without the files it was
    replacing: a manifest that is true about every file it lists, on a phone holding parts
    of two bundles. Doctor called that fine; the integrity check does not."""
    plan_a, plan_b = two_bundles
    layout = PhoneLayout(WORK)
    push_assets(device, plan_a, layout)
    manifest = json.loads(on_phone(emulator, "manifest.json").read_text())
    for rel in BINS[:2]:
        on_phone(emulator, rel).write_bytes(plan_bytes(plan_b, rel))
        del manifest["files"][rel]
    legacy = {"version": 1, "created": "", "tool_version": "qwenchat 0.1", "model": None,
              "files": manifest["files"]}  # fmt: skip
    on_phone(emulator, "manifest.json").write_text(json.dumps(legacy))
    verdict = bundle_integrity(device, layout)
    assert (verdict.ok, verdict.state) == (False, "mixed")
    assert verdict.message == (
        "the phone holds parts of two bundles: bundle/genie_config.json names "
        f"{BINS[0]}, which the manifest does not vouch for (+1 more)"
    )


def test_integrity_says_a_push_is_at_work(emulator, device, synthetic_bundle):
    plan = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")
    layout = PhoneLayout(WORK)
    push_assets(device, plan, layout)
    now = int(device.shell("date +%s").text.strip())
    on_phone(emulator, ".push-lock").write_text(
        f"qwenchat-push-lock 1 token=ab12 host=build-box pid=4242 since={now - 30}\n"
    )
    verdict = bundle_integrity(device, layout)
    assert (verdict.ok, verdict.state) == (False, "pushing")
    assert verdict.message.startswith(
        f"a push is changing the bundle in {WORK} right now (host build-box, pid 4242, since "
    )
