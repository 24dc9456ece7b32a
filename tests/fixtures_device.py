"""Devices for tests: an open direct Device to the emulated phone, and the same phone
through Google's adb server on the suite's private port (when Debian's adb is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def google_adb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("Google's adb is not installed (make test installs it)")
    return subprocess.run(
        [adb, "-P", os.environ["ANDROID_ADB_SERVER_PORT"], *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def device(emulator) -> Iterator:
    from qwenchat.device.direct import DirectDevice

    dev = DirectDevice.connect_tcp(emulator.host, emulator.port, auth_timeout=5)
    yield dev
    dev.close()


@pytest.fixture
def server_device(emulator) -> Iterator:
    """The emulator held by Google's adb server (key at $HOME/.android/adbkey authorized)."""
    import time

    from qwenchat.device.server import ServerDevice

    google_adb("start-server")
    result = google_adb("connect", emulator.address)
    assert "connected" in result.stdout, result.stdout + result.stderr
    deadline = time.monotonic() + 10
    while True:
        state = [
            line.split()[1]
            for line in google_adb("devices").stdout.splitlines()[1:]
            if line.startswith(emulator.address + "\t")
        ]
        if state == ["device"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert state == ["device"], f"adb sees {emulator.address} as {state}"
    dev = ServerDevice(emulator.address)
    yield dev
    dev.close()
    google_adb("disconnect", emulator.address)


def push_bundle(device, bundle, layout=None) -> None:
    """Push a synthetic bundle (``make_bundle``'s result) as ``qwenchat push-assets`` would."""
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.layout import PhoneLayout

    plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
    push_assets(device, plan, layout or PhoneLayout(), overlap=False)


@pytest.fixture
def bundled_phone(emulator_factory, adb_key, synthetic_bundle, tmp_path):
    """Factory: an emulated phone with the synthetic bundle pushed, and a direct Device to it.

    ``profile`` (a dict) becomes the simulated genie's device profile (init_ms,
    prefill_chunk_ms, chunk_tokens, decode_tok_s); ``push=False`` leaves the phone empty;
    other keywords are EmulatorConfig fields (time scale 0.02 and no jitter unless given).
    """
    import json

    from qwenchat.device.direct import DirectDevice

    opened = []

    def make(*, profile: dict | None = None, push: bool = True, **overrides):
        overrides.setdefault("time_scale", 0.02)
        overrides.setdefault("jitter", False)
        if profile is not None:
            path = tmp_path / f"profile-{len(opened)}.json"
            path.write_text(json.dumps(profile))
            overrides["genie_profile"] = path
        emu = emulator_factory(authorized_keys=[adb_key], **overrides)
        dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
        opened.append(dev)
        if push:
            push_bundle(dev, synthetic_bundle)
        return emu, dev

    yield make
    for dev in opened:
        dev.close()
