"""push_assets against the emulated phone: real sockets, real sync, real sha256sum there."""

from __future__ import annotations

import json
import os
import signal

import pytest

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.push import PushInterruptedError, PushProgress, prepare_phone, push_assets
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest, HashCache

WORK = "/data/local/tmp/qwenchat"


def on_phone(emulator, remote: str):
    return emulator.config.fs_root / remote.lstrip("/")


def phone_matches_plan(emulator, plan, work: str = WORK) -> None:
    for f in plan.files:
        path = on_phone(emulator, f"{work}/{f.remote}")
        data = f.data if f.data is not None else f.local.read_bytes()
        assert path.read_bytes() == data, f.remote
        assert not path.with_name(path.name + ".partial").exists()
    manifest = BundleManifest.from_json(on_phone(emulator, f"{work}/manifest.json").read_text())
    assert sorted(manifest.files) == sorted(f.remote for f in plan.files)


class Recorder(PushProgress):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.bytes = 0

    def file_started(self, remote: str, size: int) -> None:
        self.started.append(remote)

    def advance(self, nbytes: int) -> None:
        self.bytes += nbytes


@pytest.fixture
def plan(synthetic_bundle):
    return plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750")


def test_first_push_then_unchanged_push_sends_and_hashes_nothing(device, emulator, plan, tmp_path):
    layout = PhoneLayout(WORK)
    progress = Recorder()
    with HashCache(tmp_path / "h.sqlite") as cache:
        first = push_assets(device, plan, layout, cache=cache, progress=progress)
    assert first.files_sent == len(plan.files) and first.bytes_sent == plan.total_size
    assert progress.bytes == plan.total_size
    assert progress.started == [f.remote for f in plan.files]
    assert first.simulated
    assert first.host_files_hashed == sum(1 for f in plan.files if f.local is not None)
    phone_matches_plan(emulator, plan)
    genie = on_phone(emulator, f"{WORK}/bin/genie-t2t-run")
    assert genie.stat().st_mode & 0o111
    config = json.loads(on_phone(emulator, f"{WORK}/bundle/genie_config.json").read_text())
    assert config["dialog"]["engine"]["model"]["binary"]["ctx-bins"] == [
        p.name for p in synthetic_bundle_bins(plan)
    ]

    with HashCache(tmp_path / "h.sqlite") as cache:  # a new run: cache read from disk
        again = push_assets(device, plan, layout, cache=cache)
    assert (again.files_sent, again.files_skipped) == (0, len(plan.files))
    assert again.host_files_hashed == 0 and again.phone_files_hashed == 0
    assert again.host_cache_hits == first.host_files_hashed
    assert again.shell_calls == 1


def synthetic_bundle_bins(plan):
    return [f.local for f in plan.files if f.remote.endswith(".bin")]


def test_changed_config_sends_only_that_file(device, emulator, synthetic_bundle, plan):
    layout = PhoneLayout(WORK)
    push_assets(device, plan, layout)
    hotter = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750", temp=0.3)
    report = push_assets(device, hotter, layout)
    assert report.sent == ["bundle/genie_config.json"]
    assert report.phone_files_hashed == 1  # only the file just sent
    config = json.loads(on_phone(emulator, f"{WORK}/bundle/genie_config.json").read_text())
    assert config["dialog"]["sampler"]["temp"] == 0.3
    phone_matches_plan(emulator, hotter)


def test_verify_rehashes_everything_and_repairs_a_damaged_file(device, emulator, plan):
    layout = PhoneLayout(WORK)
    push_assets(device, plan, layout)
    damaged = on_phone(emulator, f"{WORK}/bundle/weight_sharing_model_2_of_4.serialized.bin")
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0xFF  # same size: only a hash can see it
    damaged.write_bytes(bytes(data))
    quick = push_assets(device, plan, layout)
    assert quick.files_sent == 0  # without --verify the manifest + sizes are trusted
    report = push_assets(device, plan, layout, verify=True)
    assert report.verified and report.phone_files_hashed == len(plan.files) + 1
    assert report.sent == report.repaired == ["bundle/weight_sharing_model_2_of_4.serialized.bin"]
    phone_matches_plan(emulator, plan)


def test_dropped_connection_leaves_only_partial_and_resume_completes(
    emulator_factory, adb_key, plan, tmp_path
):
    from qwenchat.device.direct import DirectDevice

    # Bins are 1 MiB each: the link drops inside the third one.
    emu = emulator_factory(authorized_keys=[adb_key], drop_after_bytes=int(2.5 * 1024 * 1024))
    layout = PhoneLayout(WORK)
    dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
    with pytest.raises(PushInterruptedError, match="run again to resume") as info:
        push_assets(dev, plan, layout)
    assert "weight_sharing_model_3_of_4" in info.value.message
    dev.close()
    third = on_phone(emu, f"{WORK}/bundle/weight_sharing_model_3_of_4.serialized.bin")
    assert not third.exists()
    # Only the .partial name can hold an unfinished file (the emulated adbd, like the real
    # one, even deletes it when the sync dies): nothing looks complete, no manifest claims it.
    partial = third.with_name(third.name + ".partial")
    assert not partial.exists() or partial.stat().st_size < plan.files[2].size
    assert not on_phone(emu, f"{WORK}/manifest.json").exists()
    assert sorted(p.name for p in third.parent.iterdir()) == [
        "weight_sharing_model_1_of_4.serialized.bin",
        "weight_sharing_model_2_of_4.serialized.bin",
    ] + ([partial.name] if partial.exists() else [])

    emu.config.drop_after_bytes = None
    dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
    try:
        report = push_assets(dev, plan, layout)
    finally:
        dev.close()
    # The two bins that made it are recognised by their hash on the phone, not re-sent.
    assert report.sent == [f.remote for f in plan.files[2:]]
    assert report.phone_files_hashed >= 2
    phone_matches_plan(emu, plan)


def test_disk_full_is_refused_before_sending_with_numbers(emulator_factory, adb_key, plan):
    from qwenchat.device.direct import DirectDevice
    from qwenchat.errors import DeviceStorageError

    emu = emulator_factory(authorized_keys=[adb_key], free_mb=6)
    dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
    try:
        with pytest.raises(DeviceStorageError) as info:
            push_assets(dev, plan, PhoneLayout(WORK))
    finally:
        dev.close()
    message = info.value.message
    assert message.startswith("needs 12.") and "MB, phone has" in message
    assert message.endswith(f"free in {WORK}")
    bundle_dir = on_phone(emu, f"{WORK}/bundle")
    assert not bundle_dir.exists() or not any(bundle_dir.iterdir())


def test_prepare_phone_detects_the_soc_and_uses_another_work_dir(
    device, emulator, synthetic_bundle
):
    work = "/data/local/tmp/elsewhere"
    report = prepare_phone(
        device, synthetic_bundle.bundle, synthetic_bundle.qairt, work_dir=work, seed=7
    )
    assert report.work_dir == work and report.files_sent == 16
    assert not report.verified  # a plain push: the phone re-hashes only what it was sent
    ext = json.loads(on_phone(emulator, f"{work}/bundle/htp_backend_ext_config.json").read_text())
    assert ext["devices"][0]["dsp_arch"] == "v79" and ext["devices"][0]["soc_model"] == 69
    config = json.loads(on_phone(emulator, f"{work}/bundle/genie_config.json").read_text())
    assert config["dialog"]["sampler"]["seed"] == 7


@pytest.mark.google_adb
def test_through_google_adb_server_with_overlapped_hashing(server_device, emulator, plan):
    assert server_device.transport_name == "server"  # hashing overlaps the next push here
    report = push_assets(server_device, plan, PhoneLayout(WORK))
    assert report.files_sent == report.phone_files_hashed == len(plan.files)
    phone_matches_plan(emulator, plan)
    again = push_assets(server_device, plan, PhoneLayout(WORK))
    assert again.files_sent == 0 and again.phone_files_hashed == 0


def test_ctrl_c_mid_file_stops_cleanly_and_the_next_run_resumes(emulator, plan, adb_key):
    from qwenchat.device.direct import DirectDevice

    class CtrlC(PushProgress):
        def __init__(self) -> None:
            self.file = ""

        def file_started(self, remote: str, size: int) -> None:
            self.file = remote

        def advance(self, nbytes: int) -> None:
            if self.file == plan.files[1].remote:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, mid-file

    layout = PhoneLayout(WORK)
    dev = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    with pytest.raises(PushInterruptedError) as info:
        push_assets(dev, plan, layout, progress=CtrlC())
    dev.close()
    assert info.value.exit_code == 130
    assert info.value.message.startswith(f"interrupted while sending {plan.files[1].remote}")
    assert info.value.message.endswith("run again to resume")
    assert not on_phone(emulator, f"{WORK}/{plan.files[1].remote}").exists()
    assert not on_phone(emulator, f"{WORK}/manifest.json").exists()

    dev = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    try:
        report = push_assets(dev, plan, layout)
    finally:
        dev.close()
    assert report.sent == [f.remote for f in plan.files[1:]]
    phone_matches_plan(emulator, plan)


def test_files_of_an_older_bundle_are_removed(device, emulator, plan, synthetic_bundle, tmp_path):
    layout = PhoneLayout(WORK)
    push_assets(device, plan, layout)
    other = tmp_path / "other-export"
    other.mkdir()
    for n in (1, 2, 3, 4):
        (other / f"qwen_part_{n}_of_4.bin").write_bytes(bytes([n]) * 4096)
    (other / "tokenizer.json").symlink_to(synthetic_bundle.tokenizer)
    new_plan = plan_bundle(other, synthetic_bundle.qairt, "SM8750")
    report = push_assets(device, new_plan, layout)
    assert sorted(report.sent) == [
        "bundle/genie_config.json",
        *(f"bundle/qwen_part_{n}_of_4.bin" for n in (1, 2, 3, 4)),
    ]
    bundle = on_phone(emulator, f"{WORK}/bundle")
    assert not list(bundle.glob("weight_sharing_model_*"))
    phone_matches_plan(emulator, new_plan)


def test_ctrl_c_between_files_is_an_interrupted_push_and_the_handler_is_put_back(
    emulator, plan
):
    from qwenchat.device.direct import DirectDevice

    class CtrlCBetweenFiles(PushProgress):
        def file_finished(self, remote: str) -> None:
            if remote == plan.files[0].remote:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, in qwenchat's own code

    before = signal.getsignal(signal.SIGINT)
    dev = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    try:
        with pytest.raises(PushInterruptedError) as info:
            push_assets(dev, plan, PhoneLayout(WORK), progress=CtrlCBetweenFiles())
    finally:
        dev.close()
    assert info.value.exit_code == 130
    assert info.value.message.endswith("; run again to resume")
    assert signal.getsignal(signal.SIGINT) is before  # the push's own handler is gone

    report = push_assets(
        DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5), plan,
        PhoneLayout(WORK),
    )
    assert signal.getsignal(signal.SIGINT) is before
    phone_matches_plan(emulator, plan)
    assert report.files_sent == len(plan.files) - 1  # the first file was already in place
