"""Issue 17: faults the emulated phone cannot make yet, injected by a Device wrapper with the
real emulated phone underneath (until the emulator's `corrupt-bytes` and `fail-command`
switches land): a byte flipped on its way to the phone, a phone command that fails (the
wrapper turns that command into `false` on the phone's real shell), a push stopped right
after a file arrived whole. Host bit rot is made on real host files.

Each test fails for the bug it names: without the per-file SHA-256 check a flipped byte
lands on the phone; without the retry the push fails; without the host re-hash "damaged
twice" blames the link; without checking exit codes a failed mv leaves the push claiming
success; a complete .partial deleted and re-sent shows in ``sent``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from fixtures_bundle import bundle_variant

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.phone_state import bundle_integrity
from qwenchat.assets.push import PushInterruptedError, push_assets
from qwenchat.errors import BundleError, DeviceCommandError, QwenchatError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import HashCache

WORK = "/data/local/tmp/qwenchat"
BINS = [f"bundle/weight_sharing_model_{n}_of_4.serialized.bin" for n in (1, 2, 3, 4)]


class FaultyDevice:
    """A real Device with one fault: ``flip`` (remote name → how many of its pushes arrive
    with one byte flipped), ``fail`` (a command word that becomes ``false`` in the next
    ``times`` shell commands matching ``when``), ``interrupt_after`` (Ctrl-C, a real SIGINT,
    right after that file's push completed)."""

    def __init__(self, device, scratch: Path) -> None:
        self.device = device
        self.scratch = scratch
        self.flip: dict[str, int] = {}
        self.flipped: list[str] = []
        self.fail: str | None = None
        self.when = lambda command: True
        self.times = 1
        self.failed: list[str] = []
        self.interrupt_after: str | None = None

    def _target(self, remote: str) -> str | None:
        for name, left in self.flip.items():
            if left > 0 and remote.endswith("/" + name + ".partial"):
                self.flip[name] = left - 1
                self.flipped.append(name)
                return name
        return None

    def push(self, local, remote, *, mode=0o644, mtime=None, progress=None):  # noqa: ANN001, ANN201
        if self._target(remote) is not None:
            data = bytearray(Path(local).read_bytes())
            data[len(data) // 2] ^= 0x01
            bad = self.scratch / f"flipped-{len(self.flipped)}"
            bad.write_bytes(bytes(data))
            local = bad
        self.device.push(local, remote, mode=mode, mtime=mtime, progress=progress)
        if self.interrupt_after and remote.endswith("/" + self.interrupt_after + ".partial"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler raises KeyboardInterrupt here

    def push_bytes(self, data, remote, *, mode=0o644):  # noqa: ANN001, ANN201
        if self._target(remote) is not None:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
            data = bytes(data)
        self.device.push_bytes(data, remote, mode=mode)

    def shell(self, command, *, timeout=60.0):  # noqa: ANN001, ANN201
        if self.fail and self.times > 0 and self.when(command):
            changed = re.sub(rf"(?<![\w./-]){re.escape(self.fail)}(?= )", "false", command)
            if changed != command:
                self.times -= 1
                self.failed.append(command)
                command = changed
        return self.device.shell(command, timeout=timeout)

    def __getattr__(self, name):  # noqa: ANN001, ANN204
        return getattr(self.device, name)


def on_phone(emulator, rel: str) -> Path:
    return emulator.config.fs_root / WORK.lstrip("/") / rel


def plan_bytes(plan, rel: str) -> bytes:
    f = plan.file(rel)
    return f.data if f.data is not None else f.local.read_bytes()


def assert_phone_is(emulator, plan) -> None:
    for f in plan.files:
        assert on_phone(emulator, f.remote).read_bytes() == plan_bytes(plan, f.remote), f.remote
    manifest = json.loads(on_phone(emulator, "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(f.remote for f in plan.files)


@pytest.fixture
def plan(synthetic_bundle):
    return plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")


@pytest.fixture
def faulty(device, tmp_path):
    return FaultyDevice(device, tmp_path)


# ---------------------------------------------------------------- damaged in transit


@pytest.mark.parametrize("name", [BINS[2], "bundle/genie_config.json"])
def test_a_file_damaged_on_its_way_is_caught_by_sha256_and_sent_again(
    emulator, faulty, plan, name
):
    faulty.flip[name] = 1
    report = push_assets(faulty, plan, PhoneLayout(WORK), overlap=False)
    assert faulty.flipped == [name]  # the fault really happened once
    assert report.retried == [name]
    assert report.phone_files_hashed == len(plan.files) + 1
    assert_phone_is(emulator, plan)


def test_a_file_damaged_twice_says_the_host_file_may_be_bad_and_nothing_looks_complete(
    emulator, faulty, plan
):
    faulty.flip[BINS[1]] = 2
    with pytest.raises(DeviceCommandError) as info:
        push_assets(faulty, plan, PhoneLayout(WORK), overlap=False)
    assert info.value.message == (
        f"{BINS[1]} arrived damaged on the phone twice (SHA-256 differs); the host file still "
        "hashes as expected, so the link or the phone's storage corrupts it, or the host file "
        "may be bad (a disk that returns different bytes on each read)"
    )
    assert not on_phone(emulator, BINS[1]).exists()
    assert not on_phone(emulator, BINS[1] + ".partial").exists()
    assert not on_phone(emulator, "manifest.json").exists()
    assert bundle_integrity(faulty, PhoneLayout(WORK)).state == "interrupted"


def _private_bundle(tmp_path, synthetic_bundle):
    folder = bundle_variant(tmp_path / "mine", synthetic_bundle, seed=7)
    return folder, plan_bundle(folder, synthetic_bundle.qairt, "SM8750")


def _rot(path: Path) -> tuple[str, str]:
    """Flip one byte in place, keeping size and mtime; (sha before, sha after)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    before = hashlib.sha256(data).hexdigest()
    data[len(data) // 3] ^= 0x40
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return before, hashlib.sha256(data).hexdigest()


def test_host_bit_rot_under_a_trusted_cache_is_named_as_the_host_file(
    emulator, device, synthetic_bundle, tmp_path
):
    folder, plan = _private_bundle(tmp_path, synthetic_bundle)
    part = folder / Path(BINS[3]).name
    with HashCache(tmp_path / "cache.sqlite") as cache:
        cache.sha256_many([part])  # hashed once, as a previous push would have
        before, after = _rot(part)
        with pytest.raises(BundleError) as info:
            push_assets(device, plan, PhoneLayout(WORK), cache=cache, overlap=False)
    assert info.value.message == (
        f"{part} changed on the host during the push or is damaged: its SHA-256 is now "
        f"{after[:12]}, it was {before[:12]} when the push began; the host file may be bad"
    )
    assert not on_phone(emulator, BINS[3]).exists()
    assert not on_phone(emulator, "manifest.json").exists()


def test_verify_rehashes_the_host_side_and_refuses_bit_rot_before_touching_the_phone(
    emulator, device, synthetic_bundle, tmp_path
):
    folder, plan = _private_bundle(tmp_path, synthetic_bundle)
    layout = PhoneLayout(WORK)
    with HashCache(tmp_path / "cache.sqlite") as cache:
        push_assets(device, plan, layout, cache=cache)
    good = {f.remote: plan_bytes(plan, f.remote) for f in plan.files}
    part = folder / Path(BINS[0]).name
    before, after = _rot(part)
    with HashCache(tmp_path / "cache.sqlite") as cache:
        quick = push_assets(device, plan, layout, cache=cache)  # trusts (size, mtime)
        assert quick.files_sent == 0 and quick.host_files_hashed == 0
        with pytest.raises(BundleError) as info:
            push_assets(device, plan, layout, cache=cache, verify=True)
    assert info.value.message == (
        f"host file {part} changed without its size or time changing: SHA-256 now "
        f"{after[:12]}, {before[:12]} when first read; the host copy may be damaged (bit rot)"
    )
    for rel, data in good.items():  # the phone keeps its good copy
        assert on_phone(emulator, rel).read_bytes() == data, rel
    assert bundle_integrity(device, layout, deep=True).ok


# ------------------------------------------------------------- a complete .partial


def test_a_complete_partial_is_renamed_not_sent_again(emulator, device, tmp_path, plan):
    faulty = FaultyDevice(device, tmp_path)
    faulty.interrupt_after = BINS[2]
    with pytest.raises(PushInterruptedError) as info:
        push_assets(faulty, plan, PhoneLayout(WORK), overlap=False)
    assert info.value.exit_code == 130
    assert on_phone(emulator, BINS[2] + ".partial").stat().st_size == plan.file(BINS[2]).size
    assert not on_phone(emulator, BINS[2]).exists()

    report = push_assets(device, plan, PhoneLayout(WORK))
    assert report.resumed == [BINS[2]]
    assert report.sent == [f.remote for f in plan.files[3:]]
    assert report.bytes_sent == sum(f.size for f in plan.files[3:])
    assert_phone_is(emulator, plan)
    assert not on_phone(emulator, BINS[2] + ".partial").exists()


# ---------------------------------------------------------------- failing commands


@pytest.fixture
def phone_with_a(emulator, device, synthetic_bundle, tmp_path, plan):
    """The phone holds bundle A (the session's); returns plan A and plan B (another export
    with the same names)."""
    push_assets(device, plan, PhoneLayout(WORK))
    b = bundle_variant(tmp_path / "bundle-b", synthetic_bundle, seed=3)
    return plan, plan_bundle(b, synthetic_bundle.qairt, "SM8750")


def _one_line(exc: QwenchatError) -> str:
    assert "\n" not in exc.message
    return exc.message


def test_a_failing_mv_stops_the_push_and_the_next_run_resumes(
    emulator, faulty, phone_with_a
):
    plan_a, plan_b = phone_with_a
    faulty.fail = "mv"
    faulty.when = lambda c: f"{BINS[1]}.partial" in c and "mv -f" in c
    with pytest.raises(DeviceCommandError) as info:
        push_assets(faulty, plan_b, PhoneLayout(WORK), overlap=False)
    assert _one_line(info.value) == (
        f"renaming {BINS[1]} into place failed on the phone: exit 1"
    )
    assert len(faulty.failed) == 1
    # Nothing looks complete: the mix is there, but no manifest vouches for it.
    assert on_phone(emulator, BINS[0]).read_bytes() == plan_bytes(plan_b, BINS[0])
    assert on_phone(emulator, BINS[1]).read_bytes() == plan_bytes(plan_a, BINS[1])
    assert not on_phone(emulator, "manifest.json").exists()
    assert bundle_integrity(faulty, PhoneLayout(WORK)).state == "interrupted"
    # The verified .partial the failed mv left is put into place by the next run.
    report = push_assets(faulty, plan_b, PhoneLayout(WORK))
    assert report.resumed == [BINS[1]]
    assert_phone_is(emulator, plan_b)


def test_a_failing_rm_of_the_manifest_leaves_the_old_bundle_whole(
    emulator, faulty, phone_with_a
):
    plan_a, plan_b = phone_with_a
    faulty.fail = "rm"
    faulty.when = lambda c: "manifest.json" in c and ".push-journal" in c
    with pytest.raises(DeviceCommandError) as info:
        push_assets(faulty, plan_b, PhoneLayout(WORK), overlap=False)
    assert _one_line(info.value) == (
        "starting the push (journal, old files, manifest) failed on the phone: exit 1"
    )
    assert_phone_is(emulator, plan_a)  # not one file of B went in
    assert bundle_integrity(faulty, PhoneLayout(WORK)).ok


def test_a_failing_sha256sum_is_one_line_and_never_passes_a_file(
    emulator, faulty, phone_with_a
):
    plan_a, plan_b = phone_with_a
    faulty.fail = "sha256sum"
    faulty.when = lambda c: f"{BINS[0]}.partial" in c
    with pytest.raises(DeviceCommandError) as info:
        push_assets(faulty, plan_b, PhoneLayout(WORK), overlap=False)
    assert _one_line(info.value) == "sha256sum failed on the phone: exit 1"
    assert on_phone(emulator, BINS[0]).read_bytes() == plan_bytes(plan_a, BINS[0])
    assert not on_phone(emulator, "manifest.json").exists()
    assert bundle_integrity(faulty, PhoneLayout(WORK)).state == "interrupted"


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            lambda c: "mkdir -p" in c,
            f"cannot create the work dir {WORK} on the phone (mkdir failed)",
        ),
        (
            lambda c: "if mkdir" in c and "__acquired__" in c,
            f"cannot create the push lock in {WORK} on the phone (mkdir or write failed)",
        ),
    ],
    ids=["work-dir", "lock"],
)
def test_a_failing_mkdir_is_one_line_and_changes_nothing(
    emulator, faulty, phone_with_a, when, message
):
    plan_a, plan_b = phone_with_a
    faulty.fail = "mkdir"
    faulty.when = when
    with pytest.raises(DeviceCommandError) as info:
        push_assets(faulty, plan_b, PhoneLayout(WORK), overlap=False)
    assert _one_line(info.value) == message
    assert_phone_is(emulator, plan_a)


def test_a_damaged_hash_cache_is_one_note_and_the_push_goes_on(
    capsys, monkeypatch, emulator, synthetic_bundle, tmp_path
):
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    db = cache_dir / "hashes.sqlite"
    db.write_bytes(b"\x00garbage" * 512)
    monkeypatch.setenv("QWENCHAT_CACHE", str(cache_dir))
    monkeypatch.setenv("COLUMNS", "1000")
    code = run_app(app, ["push-assets", "--bundle", str(synthetic_bundle.bundle), "--qairt",
                         str(synthetic_bundle.qairt), "--connect", emulator.address,
                         "--transport", "direct"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [f"note: hash cache {db} was damaged (file is not a database); rebuilt it"]
    assert "sent 16 file(s)" in out
