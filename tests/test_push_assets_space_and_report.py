"""push-assets' arithmetic against hand-worked numbers: the most space a push needs at once
(files are replaced one at a time), the free space it counts (leftovers and stale files are
removed first), which manifest names it may delete, and the report's figures and words."""

from __future__ import annotations

import pytest

from qwenchat.assets.bundle import BundleFile
from qwenchat.assets.phone_state import PhoneState
from qwenchat.assets.push import (
    PushReport,
    _check_space,
    _peak_need,
    _safe_relative,
    format_bytes,
)
from qwenchat.errors import DeviceStorageError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest, FileEntry


def f(remote: str, size: int) -> BundleFile:
    return BundleFile(local=None, data=b"", remote=remote, mode=0o644, size=size)


def state(sizes=None, partial=None, free=None, manifest=None) -> PhoneState:
    return PhoneState(manifest=manifest, sizes=dict(sizes or {}), partial_sizes=dict(partial or {}),
                      free_bytes=free)


def test_peak_need_of_new_files_is_their_sum():
    assert _peak_need([f("a", 100), f("b", 50)], state()) == 150


def test_peak_need_counts_a_replaced_file_in_full_while_both_copies_exist():
    # a: 100 replaces 80 (peak 100, then +20); b: 10 replaces 300 (peak 30, then -270).
    assert _peak_need([f("a", 100), f("b", 10)], state({"a": 80, "b": 300})) == 100
    # Shrinking first frees room for the next: b 10 (was 300) -> -290; a 100 -> peak -190.
    assert _peak_need([f("b", 10), f("a", 100)], state({"a": 80, "b": 300})) == 10
    assert _peak_need([], state()) == 0


def test_peak_need_adds_up_files_sent_one_after_another():
    # Each step's peak (growth so far + the file) is 60, then 60 + 70 = 130.
    assert _peak_need([f("a", 60), f("b", 70)], state({"x": 5})) == 130


def test_space_check_counts_leftovers_and_stale_files_as_free():
    layout = PhoneLayout("/data/local/tmp/q")
    old = BundleManifest(files={"old.bin": FileEntry(400, "0" * 64)})
    order = [f("new.bin", 1000)]
    # 500 free + 100 of .partial leftovers + 400 of a stale file = exactly 1000.
    _check_space(order, state(free=500, partial={"p": 100}, manifest=old), layout, ["old.bin"])
    with pytest.raises(DeviceStorageError) as info:
        _check_space(order, state(free=499, partial={"p": 100}, manifest=old), layout,
                     ["old.bin", "unknown.bin"])
    # 999 bytes free against 1000 needed (both print as 1.0 kB).
    assert str(info.value).startswith("needs 1.0 kB, phone has 1.0 kB free in /data/local/tmp/q")
    # df could not be read: no check (the push fails cleanly on a full disk instead).
    _check_space(order, state(free=None), layout, [])


def test_space_check_message_names_both_figures():
    layout = PhoneLayout("/data/local/tmp/q")
    with pytest.raises(DeviceStorageError) as info:
        _check_space([f("a", 3_000_000_000)], state(free=2_500_000), layout, [])
    assert str(info.value).startswith("needs 3.0 GB, phone has 2.5 MB free in /data/local/tmp/q")


@pytest.mark.parametrize("n, text", [
    (0, "0.0 kB"), (999, "1.0 kB"), (999_999, "1000.0 kB"), (1_000_000, "1.0 MB"),
    (2_500_000, "2.5 MB"), (999_999_999, "1000.0 MB"), (1_000_000_000, "1.0 GB"),
    (4_830_000_000, "4.8 GB"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("name, ok", [
    ("bundle/model.bin", True), ("tokenizer.json", True), ("/etc/passwd", False),
    ("../outside", False), ("a/../../b", False), ("a//b", False), ("./a", False),
    (".", False), ("..", False), ("a/./b", False),
])
def test_only_plain_names_inside_the_work_dir_may_be_deleted(name, ok):
    assert _safe_relative(name) is ok


def _report(**over):
    fields = dict(work_dir="/w", files_sent=2, files_skipped=3, bytes_sent=50_000_000,
                  bytes_total=80_000_000, seconds=12.34567, send_seconds=4.0, verified=False,
                  simulated=True)
    fields.update(over)
    return PushReport(**fields)


def test_report_speed_and_rounding():
    r = _report()
    assert r.mb_per_s == 12.5  # 50 MB in 4 s
    assert _report(send_seconds=0.0).mb_per_s == 0.0
    d = r.to_dict()
    assert (d["mb_per_s"], d["seconds"], d["send_seconds"]) == (12.5, 12.346, 4.0)
    assert d["files_sent"] == 2 and d["simulated"] is True


def test_verify_text():
    assert _report().verify_text == ""
    assert _report(verified=True).verify_text == (
        "verified: all 5 file(s) re-hashed on the host and the phone"
    )
    assert _report(verified=True, repaired=["a.bin", "b.bin"]).verify_text == (
        "verified: all 5 file(s) re-hashed on the host and the phone, repaired 2: a.bin, b.bin"
    )
