"""Issue 17: faults made by the emulated phone itself, thrown with its real switches
(``phone_fault``, as ``qwenchat emulator fault`` does) while push-assets runs: bytes flipped
inside the phone's ADB sync path after a file arrived (``corrupt-bytes``), a /system/bin
command that fails in the phone's shell (``fail-command``). The test throws a switch at a
chosen point of the push (``SwitchAt``, a PushProgress: when a file starts, when a status line
shows), never by wrapping the Device. Host bit rot is made on real host files.

Every outcome is judged on the phone: its files' bytes, its manifest, the commands its adbd
logged (``qwenchat emulator log``), and which switches it used up. Each test fails for the bug
it names: without the per-file SHA-256 check a damaged file lands on the phone; without the
retry the push fails; without the host re-hash "damaged twice" blames the link; without
checking exit codes a failed mv/rm/mkdir/sha256sum leaves the push claiming success; a
complete .partial deleted and re-sent shows in ``sent``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fixtures_bundle import bundle_variant

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.phone_state import bundle_integrity
from qwenchat.assets.push import PushProgress, push_assets
from qwenchat.emulator.commandlog import read_records
from qwenchat.emulator.faults import clear_faults, list_faults
from qwenchat.errors import BundleError, DeviceCommandError, QwenchatError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import HashCache

WORK = "/data/local/tmp/qwenchat"
# What the phone's failing /system/bin program says (qwenchat/emulator/rootfs.py).
FAILED = "SIMULATED failure (qwenchat emulator fault fail-command)"
BINS = [f"bundle/weight_sharing_model_{n}_of_4.serialized.bin" for n in (1, 2, 3, 4)]


class SwitchAt(PushProgress):
    """Throws the phone's fault switch ``name value`` when the push reaches a point: a file
    about to be sent (``file``; every time it is sent, ``times`` times) or a status line
    containing ``status``. ``thrown`` lists where it was thrown."""

    def __init__(self, emu, phone_fault, name: str, value: object = None, *,  # noqa: ANN001
                 file: str | None = None, status: str | None = None, times: int = 1) -> None:  # fmt: skip
        self.emu, self.phone_fault = emu, phone_fault
        self.name, self.value = name, value
        self.file, self.on_status, self.left = file, status, times
        self.thrown: list[str] = []

    def _throw(self, where: str) -> None:
        if self.left > 0:
            self.left -= 1
            self.thrown.append(where)
            self.phone_fault(self.emu, self.name, self.value)

    def file_started(self, remote: str, size: int) -> None:
        if self.file is None or remote == self.file:
            self._throw(remote)

    def status(self, text: str) -> None:
        if self.on_status is not None and self.on_status in text:
            self._throw(text)


def log_mark(emu) -> int:
    """Where the phone's command log stands now: look only at what comes after."""
    return len(read_records(emu.root))


def sends(emu, rel: str, since: int = 0) -> int:
    """How many times the phone's adbd received a sync SEND of ``rel`` (as its .partial)."""
    path = f"{WORK}/{rel}.partial"
    return sum(
        1
        for r in read_records(emu.root)[since:]
        if r.get("request") == "SEND" and r["what"] == path
    )


def shell_runs(emu, needle: str, since: int = 0) -> list[int | None]:
    """Exit codes of the shell commands the phone ran whose command line holds ``needle``."""
    records = read_records(emu.root)
    ends = {r["id"]: r.get("exit_code") for r in records if r["kind"] == "end"}
    return [
        ends.get(r["id"]) for r in records[since:] if r["kind"] == "shell" and needle in r["what"]
    ]


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


# ---------------------------------------------------------------- damaged in transit


@pytest.mark.parametrize("name", [BINS[2], "bundle/genie_config.json"])  # a file, and bytes
def test_a_file_damaged_on_its_way_is_caught_by_sha256_and_sent_again(
    emulator, device, phone_fault, plan, name
):
    damage = SwitchAt(emulator, phone_fault, "corrupt-bytes", 3, file=name)
    report = push_assets(device, plan, PhoneLayout(WORK), overlap=False, progress=damage)
    assert damage.thrown == [name]
    assert list_faults(emulator.root) == []  # the phone used the one-shot switch up
    # The phone received that file twice, every other file once, and removed the damaged copy.
    assert sends(emulator, name) == 2
    assert all(sends(emulator, f.remote) == 1 for f in plan.files if f.remote != name)
    assert shell_runs(emulator, f"rm -f {WORK}/{name}.partial") == [0]
    assert report.retried == [name]
    assert report.phone_files_hashed == len(plan.files) + 1
    assert_phone_is(emulator, plan)


def test_a_file_damaged_twice_says_the_host_file_may_be_bad_and_nothing_looks_complete(
    emulator, device, phone_fault, plan
):
    damage = SwitchAt(emulator, phone_fault, "corrupt-bytes", 1, file=BINS[1], times=2)
    with pytest.raises(DeviceCommandError) as info:
        push_assets(device, plan, PhoneLayout(WORK), overlap=False, progress=damage)
    assert _one_line(info.value) == (
        f"{BINS[1]} arrived damaged on the phone twice (SHA-256 differs); the host file still "
        "hashes as expected, so the link or the phone's storage corrupts it, or the host file "
        "may be bad (a disk that returns different bytes on each read)"
    )
    assert damage.thrown == [BINS[1], BINS[1]] and list_faults(emulator.root) == []
    assert sends(emulator, BINS[1]) == 2
    assert shell_runs(emulator, f"rm -f {WORK}/{BINS[1]}.partial") == [0, 0]
    assert not on_phone(emulator, BINS[1]).exists()
    assert not on_phone(emulator, BINS[1] + ".partial").exists()
    assert not on_phone(emulator, "manifest.json").exists()
    assert bundle_integrity(device, PhoneLayout(WORK)).state == "interrupted"
    # The link is good again: the next run keeps what arrived whole and sends the rest.
    report = push_assets(device, plan, PhoneLayout(WORK))
    assert BINS[0] not in report.sent and BINS[1] in report.sent
    assert_phone_is(emulator, plan)


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


# ---------------------------------------------------------------- failing commands


@pytest.fixture
def phone_with_a(emulator, device, synthetic_bundle, tmp_path, plan):
    """The phone holds bundle A (the session's); returns plan A and plan B (another export
    with the same names)."""
    push_assets(device, plan, PhoneLayout(WORK))
    b = bundle_variant(tmp_path / "bundle-b", synthetic_bundle, seed=3)
    plan_b = plan_bundle(b, synthetic_bundle.qairt, "SM8750")
    return plan, plan_b, log_mark(emulator)


def _one_line(exc: QwenchatError) -> str:
    assert "\n" not in exc.message
    return exc.message


def _next_run_completes(emulator, device, plan_b):
    """The fault is gone: the next push finishes the job from where the phone stands."""
    clear_faults(emulator.root)
    report = push_assets(device, plan_b, PhoneLayout(WORK))
    assert_phone_is(emulator, plan_b)
    assert bundle_integrity(device, PhoneLayout(WORK), deep=True).ok
    return report


def test_a_failing_mv_stops_the_push_and_the_next_run_resumes(
    emulator, device, phone_fault, phone_with_a
):
    plan_a, plan_b, since = phone_with_a
    mv_breaks = SwitchAt(emulator, phone_fault, "fail-command", "mv", file=BINS[1])
    with pytest.raises(DeviceCommandError) as info:
        push_assets(device, plan_b, PhoneLayout(WORK), overlap=False, progress=mv_breaks)
    assert _one_line(info.value) == (
        f"renaming {BINS[1]} into place failed on the phone: mv: {FAILED}"
    )
    assert mv_breaks.thrown == [BINS[1]]
    # The phone really ran the rename, and its mv failed.
    assert shell_runs(emulator, f"mv -f {WORK}/{BINS[1]}.partial", since) == [1]
    # Nothing looks complete: the mix is there, but no manifest vouches for it.
    assert on_phone(emulator, BINS[0]).read_bytes() == plan_bytes(plan_b, BINS[0])
    assert on_phone(emulator, BINS[1]).read_bytes() == plan_bytes(plan_a, BINS[1])
    assert not on_phone(emulator, "manifest.json").exists()
    assert bundle_integrity(device, PhoneLayout(WORK)).state == "interrupted"
    # The verified .partial the failed mv left is put into place, not sent again.
    report = _next_run_completes(emulator, device, plan_b)
    assert report.resumed == [BINS[1]] and BINS[1] not in report.sent
    assert sends(emulator, BINS[1], since) == 1


def test_a_failing_rm_of_the_manifest_leaves_the_old_bundle_whole(
    emulator, device, phone_fault, phone_with_a
):
    plan_a, plan_b, since = phone_with_a
    phone_fault(emulator, "fail-command", "rm")
    with pytest.raises(DeviceCommandError) as info:
        push_assets(device, plan_b, PhoneLayout(WORK), overlap=False)
    assert _one_line(info.value) == (
        f"starting the push (journal, old files, manifest) failed on the phone: rm: {FAILED}"
    )
    assert shell_runs(emulator, f"rm -f {WORK}/manifest.json", since) == [1]
    assert_phone_is(emulator, plan_a)  # not one file of B went in, A's manifest stands
    assert bundle_integrity(device, PhoneLayout(WORK), deep=True).ok
    _next_run_completes(emulator, device, plan_b)


def test_a_failing_sha256sum_before_the_push_changes_nothing(
    emulator, device, phone_fault, phone_with_a
):
    """--verify hashes the phone's files before deciding what to send: that failing stops the
    push before any change."""
    plan_a, plan_b, since = phone_with_a
    phone_fault(emulator, "fail-command", "sha256sum")
    with pytest.raises(DeviceCommandError) as info:
        push_assets(device, plan_b, PhoneLayout(WORK), overlap=False, verify=True)
    assert _one_line(info.value) == f"sha256sum failed on the phone: sha256sum: {FAILED}"
    assert 1 in shell_runs(emulator, "sha256sum ", since)
    assert sends(emulator, BINS[0], since) == 0
    assert_phone_is(emulator, plan_a)
    _next_run_completes(emulator, device, plan_b)


def test_a_failing_sha256sum_never_passes_a_file_and_the_complete_partial_is_kept(
    emulator, device, phone_fault, phone_with_a
):
    """The hash that verifies a file that arrived fails: the file is not put into place, its
    complete .partial stays, and the next run renames it instead of sending it again."""
    plan_a, plan_b, since = phone_with_a
    breaks = SwitchAt(emulator, phone_fault, "fail-command", "sha256sum", file=BINS[0])
    with pytest.raises(DeviceCommandError) as info:
        push_assets(device, plan_b, PhoneLayout(WORK), overlap=False, progress=breaks)
    assert _one_line(info.value) == f"sha256sum failed on the phone: sha256sum: {FAILED}"
    assert shell_runs(emulator, f"sha256sum {WORK}/{BINS[0]}.partial", since) == [1]
    assert on_phone(emulator, BINS[0]).read_bytes() == plan_bytes(plan_a, BINS[0])
    partial = on_phone(emulator, BINS[0] + ".partial")
    assert partial.read_bytes() == plan_bytes(plan_b, BINS[0])  # arrived whole, unverified
    assert not on_phone(emulator, "manifest.json").exists()
    assert bundle_integrity(device, PhoneLayout(WORK)).state == "interrupted"
    report = _next_run_completes(emulator, device, plan_b)
    assert report.resumed == [BINS[0]] and BINS[0] not in report.sent
    assert sends(emulator, BINS[0], since) == 1
    assert not partial.exists()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (None, f"cannot create the work dir {WORK} on the phone (mkdir failed: mkdir: {FAILED})"),
        (
            "taking the phone's push lock",
            f"cannot create the push lock in {WORK} on the phone (mkdir: {FAILED})",
        ),
    ],
    ids=["work-dir", "lock"],
)
def test_a_failing_mkdir_is_one_line_and_changes_nothing(
    emulator, device, phone_fault, phone_with_a, status, message
):
    plan_a, plan_b, since = phone_with_a
    if status is None:
        phone_fault(emulator, "fail-command", "mkdir")
        progress = None
    else:
        progress = SwitchAt(emulator, phone_fault, "fail-command", "mkdir", status=status)
    with pytest.raises(DeviceCommandError) as info:
        push_assets(device, plan_b, PhoneLayout(WORK), overlap=False, progress=progress)
    assert _one_line(info.value) == message
    assert progress is None or progress.thrown == [status]
    assert_phone_is(emulator, plan_a)
    assert not on_phone(emulator, ".push-lock").exists()
    _next_run_completes(emulator, device, plan_b)


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
