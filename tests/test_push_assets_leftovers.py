"""A `.partial` file an earlier push left behind and this push does not resume (the file itself
is whole on the phone, and the partial is short) is removed when the push changes anything, or
only writes the manifest back, so nothing unfinished lingers on the phone. Judged by the
phone's own listing (toybox find)."""

from __future__ import annotations

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.push import push_assets
from qwenchat.layout import PhoneLayout

LAYOUT = PhoneLayout("/data/local/tmp/qwenchat")


@pytest.fixture
def plan(synthetic_bundle):
    return plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")


def partials(device) -> list[str]:
    found = device.shell(f"find {LAYOUT.work_dir} -name '*.partial'").text.split()
    return sorted(p.removeprefix(LAYOUT.work_dir.rstrip("/") + "/") for p in found)


def test_a_partial_no_push_resumes_is_removed_when_the_push_changes_anything(device, plan):
    push_assets(device, plan, LAYOUT)
    work = LAYOUT.work_dir.rstrip("/")
    device.push_bytes(b"half a config", f"{work}/bundle/genie_config.json.partial")
    device.push_bytes(b"junk", f"{work}/lib/libGenie.so.partial")
    assert partials(device) == ["bundle/genie_config.json.partial", "lib/libGenie.so.partial"]
    assert device.shell(f"rm {work}/bin/genie-app").ok  # a change: this push does work
    push_assets(device, plan, LAYOUT)
    assert partials(device) == []
    assert device.stat(f"{work}/bin/genie-app") is not None  # and the change was made


def test_a_partial_is_removed_when_the_push_only_writes_the_manifest(device, plan):
    # Every file is whole on the phone but the manifest is gone (an interrupted push's last
    # step): this push sends nothing, writes the manifest back and leaves nothing unfinished.
    push_assets(device, plan, LAYOUT)
    work = LAYOUT.work_dir.rstrip("/")
    device.push_bytes(b"half a config", f"{work}/bundle/genie_config.json.partial")
    assert device.shell(f"rm {LAYOUT.manifest_path}").ok
    report = push_assets(device, plan, LAYOUT)
    assert report.sent == [] and report.bytes_sent == 0
    assert partials(device) == []
    assert device.stat(LAYOUT.manifest_path) is not None


def test_a_whole_partial_is_renamed_after_one_check_not_sent_again(device, plan):
    # The last push stopped between a file's last byte and its rename: its .partial is whole.
    push_assets(device, plan, LAYOUT)
    work = LAYOUT.work_dir.rstrip("/")
    name = "bundle/tokenizer.json"
    assert device.shell(f"mv {work}/{name} {work}/{name}.partial").ok
    report = push_assets(device, plan, LAYOUT)
    assert report.resumed == [name] and report.sent == []
    assert report.phone_files_hashed == 1  # the one check of the partial, nothing else
    assert partials(device) == [] and device.stat(f"{work}/{name}") is not None
