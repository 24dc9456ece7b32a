"""Issue 16: two pushes at once to one phone. One holds the phone's lock; the other says who
holds it and since when; stale locks are taken over safely and said so.

Real concurrent pushes: two qwenchat processes against one emulated phone, and two threads
with their own connections; the lock file is read from the phone's folder directly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from qwenchat.assets import lock as lock_module
from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.lock import PushLockedError, PushLockLostError, this_host
from qwenchat.assets.phone_state import bundle_integrity
from qwenchat.assets.push import PushProgress, push_assets
from qwenchat.device.direct import DirectDevice
from qwenchat.layout import PhoneLayout

WORK = "/data/local/tmp/qwenchat"


def on_phone(emulator, rel: str):
    return emulator.config.fs_root / WORK.lstrip("/") / rel


def phone_now(device) -> int:
    return int(device.shell("date +%s").text.strip())


def write_lock(emulator, line: str, age_s: int = 0) -> None:
    path = on_phone(emulator, ".push-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line + "\n")
    then = time.time() - age_s
    os.utime(path, (then, then))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def assert_phone_holds(emulator, plan) -> None:
    for f in plan.files:
        data = f.data if f.data is not None else f.local.read_bytes()
        assert on_phone(emulator, f.remote).read_bytes() == data, f.remote
    manifest = json.loads(on_phone(emulator, "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(f.remote for f in plan.files)
    assert not on_phone(emulator, ".push-lock").exists()  # released


@pytest.fixture
def plan(synthetic_bundle):
    return plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")


class Midway(PushProgress):
    """Runs ``action`` in another thread once the second file starts arriving, and waits
    for it (adb-shell swallows exceptions raised inside its progress callback)."""

    def __init__(self, plan, action) -> None:
        self.target = plan.files[1].remote
        self.action = action
        self.current = ""
        self.done = False
        self.error: BaseException | None = None

    def file_started(self, remote: str, size: int) -> None:
        self.current = remote

    def advance(self, nbytes: int) -> None:
        if self.current != self.target or self.done:
            return
        self.done = True

        def run() -> None:
            try:
                self.action()
            except BaseException as exc:  # handed to the test
                self.error = exc

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(60)


def test_a_second_push_during_a_push_is_refused_and_the_first_one_finishes(emulator, plan):
    first = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    second = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)

    def other_push() -> None:
        push_assets(second, plan, PhoneLayout(WORK), overlap=False)

    progress = Midway(plan, other_push)
    try:
        report = push_assets(first, plan, PhoneLayout(WORK), progress=progress, overlap=False)
    finally:
        first.close()
        second.close()
    assert isinstance(progress.error, PushLockedError), progress.error
    message = progress.error.message
    assert "\n" not in message
    assert re.fullmatch(
        rf"another push is writing to {WORK} on this phone \(this computer, pid {os.getpid()}, "
        r"since \d\d:\d\d:\d\d \(\d+ s ago; last progress \d+ s ago\)\)",
        message,
    ), message
    # The first push lost nothing to the second (no vanished .partial) and finished.
    assert report.files_sent == len(plan.files)
    assert_phone_holds(emulator, plan)


def _cli_push(emulator, synthetic_bundle, home, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "qwenchat", "push-assets",
        "--bundle", str(synthetic_bundle.bundle), "--qairt", str(synthetic_bundle.qairt),
        "--connect", emulator.address, "--transport", "direct", "--json", *extra,
    ]  # fmt: skip


def test_two_qwenchat_processes_pushing_at_once(
    emulator_factory, adb_key, synthetic_bundle, tmp_path, monkeypatch
):
    # A slow link (2 MB/s, in this process's emulated phone) keeps the first push busy for
    # a few seconds: long enough to start the second one while it holds the lock.
    from qwenchat.emulator import config as emulator_config

    monkeypatch.setitem(emulator_config.LINK_SPEEDS_BPS, "usb2", 2_000_000)
    emu = emulator_factory(authorized_keys=[adb_key], link="usb2")
    env = {**os.environ, "QWENCHAT_HOME": str(tmp_path / "home")}
    first = subprocess.Popen(
        _cli_push(emu, synthetic_bundle, tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lock_file = on_phone(emu, ".push-lock")
        deadline = time.monotonic() + 60
        while not lock_file.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock_file.exists(), first.communicate()
        second = subprocess.run(
            _cli_push(emu, synthetic_bundle, tmp_path), capture_output=True, text=True,
            env=env, timeout=120,
        )  # fmt: skip
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert json.loads(out)["files_sent"] == 16
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.count("error:") == 1
    # (Rich wraps the line at 80 columns when stderr is not a terminal: unwrap it.)
    assert " ".join(second.stderr.split()).startswith(
        f"error: another push is writing to {WORK} on this phone (this computer, pid "
        f"{first.pid}, since "
    ), second.stderr
    plan = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")
    assert_phone_holds(emu, plan)


def test_the_lock_of_a_process_that_is_gone_is_taken_over(emulator, device, plan):
    pid = dead_pid()
    write_lock(
        emulator, f"qwenchat-push-lock 1 token=feed host={this_host()} pid={pid} since=1", 5
    )
    report = push_assets(device, plan, PhoneLayout(WORK))
    assert report.files_sent == len(plan.files)
    assert len(report.notes) == 1
    assert re.fullmatch(
        rf"took over the lock of this computer, pid {pid}, since .*: "
        rf"its process {pid} on this computer is gone",
        report.notes[0],
    ), report.notes
    assert_phone_holds(emulator, plan)


def test_another_computers_lock_holds_until_it_shows_no_progress(emulator, device, plan):
    since = phone_now(device) - 700
    line = f"qwenchat-push-lock 1 token=beef host=build-box pid=4242 since={since}"
    write_lock(emulator, line, age_s=20)  # it did something 20 s ago: alive
    with pytest.raises(PushLockedError) as info:
        push_assets(device, plan, PhoneLayout(WORK))
    assert info.value.message.startswith(
        f"another push is writing to {WORK} on this phone (host build-box, pid 4242, since "
    )
    assert "ago; last progress 20 s ago))" in info.value.message
    assert on_phone(emulator, ".push-lock").read_text().strip() == line  # untouched
    assert not on_phone(emulator, "bundle/tokenizer.json").exists()  # nothing sent

    write_lock(emulator, line, age_s=11 * 60)  # silent for 11 min: stale
    report = push_assets(device, plan, PhoneLayout(WORK))
    assert report.notes[0].startswith("took over the lock of host build-box, pid 4242, since ")
    assert report.notes[0].endswith(": no progress for 11 min")
    assert_phone_holds(emulator, plan)


def test_break_lock_takes_over_a_live_lock(emulator, device, plan):
    write_lock(emulator, "qwenchat-push-lock 1 token=beef host=build-box pid=4242 since=1")
    report = push_assets(device, plan, PhoneLayout(WORK), break_lock=True)
    assert report.notes[0].endswith(": --break-lock")
    assert_phone_holds(emulator, plan)


def test_a_push_whose_lock_was_taken_over_stops_before_renaming_anything(emulator, plan):
    def take_over() -> None:
        write_lock(emulator, "qwenchat-push-lock 1 token=c0de host=build-box pid=7 since=1")

    dev = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    try:
        with pytest.raises(PushLockLostError) as info:
            push_assets(dev, plan, PhoneLayout(WORK), progress=Midway(plan, take_over),
                        overlap=False)  # fmt: skip
        verdict = bundle_integrity(dev, PhoneLayout(WORK))
    finally:
        dev.close()
    assert info.value.message.startswith(
        f"stopped while renaming {plan.files[1].remote} into place: another push took over "
        "the phone's lock (host build-box, pid 7, since "
    )
    # The file that was arriving stays a .partial; the other push's lock is left alone.
    assert not on_phone(emulator, plan.files[1].remote).exists()
    assert on_phone(emulator, plan.files[1].remote + ".partial").exists()
    assert "token=c0de" in on_phone(emulator, ".push-lock").read_text()
    assert not on_phone(emulator, "manifest.json").exists()
    assert verdict.state == "pushing"


def test_a_lock_guard_left_by_a_dead_shell_is_removed(emulator, device, plan, monkeypatch):
    monkeypatch.setattr(lock_module, "GUARD_WAIT_S", 0.3)
    guard = on_phone(emulator, ".push-lock.guard")
    guard.mkdir(parents=True)
    then = time.time() - 120
    os.utime(guard, (then, then))
    report = push_assets(device, plan, PhoneLayout(WORK))
    assert any(n.startswith("removed a lock guard left by a shell that died ") for n in report.notes)
    assert not guard.exists()
    assert_phone_holds(emulator, plan)


def test_a_fresh_guard_is_waited_for_not_removed(emulator, device, plan, monkeypatch):
    monkeypatch.setattr(lock_module, "GUARD_WAIT_S", 0.3)
    guard = on_phone(emulator, ".push-lock.guard")
    guard.mkdir(parents=True)

    def release_later() -> None:
        time.sleep(1.0)
        guard.rmdir()

    thread = threading.Thread(target=release_later)
    thread.start()
    try:
        report = push_assets(device, plan, PhoneLayout(WORK))
    finally:
        thread.join()
    assert not any("lock guard" in n for n in report.notes)
    assert_phone_holds(emulator, plan)


class _ChangesBeforeTheLock(PushProgress):
    """Removes ``rel`` from the phone just before the push takes the lock (another push, or
    a person, between the push's first look and its lock)."""

    def __init__(self, emulator, rel: str) -> None:
        self.emulator, self.rel = emulator, rel

    def status(self, text: str) -> None:
        if text == "taking the phone's push lock":
            on_phone(self.emulator, self.rel).unlink()


def test_what_changed_on_the_phone_before_the_lock_is_looked_at_again(emulator, device, plan):
    push_assets(device, plan, PhoneLayout(WORK))
    on_phone(emulator, "bundle/tokenizer.json").unlink()  # the first look: this one is missing
    changes = _ChangesBeforeTheLock(emulator, "bundle/genie_config.json")
    report = push_assets(device, plan, PhoneLayout(WORK), progress=changes)
    assert sorted(report.sent) == ["bundle/genie_config.json", "bundle/tokenizer.json"]
    assert_phone_holds(emulator, plan)
