"""A push that ends early (here: another push holds the phone's lock) says so at once. It
stops hashing the host bundle, which it no longer needs, instead of reading every byte of a
multi-GB context binary first, and it leaves no thread of its own behind (one still hashing
would be reading the hash cache the push closes).

Judged by the cache's own counts (a file hashed to its end is counted) and the threads alive
after the call, never by the time it took."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.lock import PushLockedError
from qwenchat.assets.push import push_assets
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import HashCache

WORK = "/data/local/tmp/qwenchat"
BIG = 4 << 30  # a sparse 4 GiB context binary: seconds of hashing, no disk used


@pytest.fixture
def big_plan(synthetic_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(synthetic_bundle.bundle, bundle)
    part = sorted(bundle.glob("*.bin"))[0]
    os.truncate(part, BIG)
    return plan_bundle(bundle, synthetic_bundle.qairt, "SM8750")


def test_a_push_refused_for_another_push_stops_hashing_and_leaves_no_thread(
    emulator, device, big_plan, tmp_path
):
    lock = emulator.config.fs_root / WORK.lstrip("/") / ".push-lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("qwenchat-push-lock 1 token=beef host=build-box pid=4242 since=1\n")
    assert sum(f.size for f in big_plan.files) > BIG
    with HashCache(tmp_path / "cache.sqlite") as cache:
        with pytest.raises(PushLockedError):
            push_assets(device, big_plan, PhoneLayout(WORK), cache=cache)
        hashers = [t.name for t in threading.enumerate() if t.name.startswith("qwenchat-host")]
        assert hashers == []
        assert cache.bytes_hashed < BIG  # the big part was never hashed to its end
