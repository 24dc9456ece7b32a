"""The emulated phone against Google's own adb client (Debian's adb 29), on the suite's
private adb server port (ANDROID_ADB_SERVER_PORT, set by conftest)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from qwenchat.emulator import SIMULATED_MODEL

ADB = shutil.which("adb")
pytestmark = [
    pytest.mark.google_adb,
    pytest.mark.skipif(ADB is None, reason="Google's adb is not installed (make test installs it)"),
]


def adb(*args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
    cmd = [ADB, "-P", os.environ["ANDROID_ADB_SERVER_PORT"], *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


def device_state(address: str) -> str | None:
    for line in adb("devices").stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == address:
            return fields[1]
    return None


def wait_state(address: str, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if device_state(address) == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"{address} is {device_state(address)!r}, not {wanted!r}")


@pytest.fixture
def connect():
    """adb connect ADDRESS, with adb disconnect at teardown."""
    addresses: list[str] = []

    def _connect(address: str) -> subprocess.CompletedProcess:
        addresses.append(address)
        return adb("connect", address)

    yield _connect
    for address in addresses:
        adb("disconnect", address)


@pytest.fixture
def online(emulator, connect) -> str:
    connect(emulator.address)
    wait_state(emulator.address, "device")
    return emulator.address


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(size % (1 << 20)))
    return path


def test_devices_lists_the_simulated_model(online):
    listing = adb("devices", "-l", check=True).stdout
    line = next(line for line in listing.splitlines() if line.startswith(online))
    # adb replaces characters outside [A-Za-z0-9._-] in the banner with "_"
    model = re.sub(r"[^A-Za-z0-9._-]", "_", SIMULATED_MODEL)
    assert f"model:{model}" in line
    assert line.split()[1] == "device"


def test_new_key_is_unauthorized_until_authorize(emulator_factory, adb_key, connect):
    from qwenchat.emulator.server import authorize_pending

    emu = emulator_factory()  # auth on, no key authorized yet
    connect(emu.address)
    wait_state(emu.address, "unauthorized")
    assert adb("-s", emu.address, "shell", "echo", "hi").returncode != 0

    accepted = authorize_pending(emu.root)
    assert [line.split()[0] for line in accepted] == [
        adb_key.with_name("adbkey.pub").read_text().split()[0]
    ]
    wait_state(emu.address, "device")  # the waiting connection comes online, as on a phone
    assert adb("-s", emu.address, "shell", "echo", "hi", check=True).stdout == "hi\n"


def test_accept_new_keys_stores_the_key(emulator_factory, adb_key, connect):
    emu = emulator_factory(accept_new_keys=True)
    connect(emu.address)
    wait_state(emu.address, "device")
    stored = (emu.config.state_dir / "adb_keys").read_text()
    assert adb_key.with_name("adbkey.pub").read_text().split()[0] in stored


def test_the_phones_shell_is_androids(online):
    assert "MIRBSD KSH" in adb("-s", online, "shell", "echo $KSH_VERSION", check=True).stdout
    assert adb("-s", online, "shell", "toybox --version", check=True).stdout.startswith("toybox")
    assert adb("-s", online, "shell", "id", check=True).stdout.startswith("uid=2000(shell)")
    mount = adb("-s", online, "shell", "mkdir -p /data/local/tmp/m; mount -t tmpfs x /data/local/tmp/m")
    assert mount.returncode != 0
    assert "/data/local/tmp/m" not in adb("-s", online, "shell", "cat /proc/mounts").stdout


def test_shell_exit_code_and_separate_stderr(online):
    result = adb("-s", online, "shell", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert adb("-s", online, "shell", "true").returncode == 0


@pytest.mark.slow
def test_push_pull_100mb_byte_identical(online, emulator, tmp_path):
    src = random_file(tmp_path / "big.bin", 100 * 1024 * 1024)
    adb("-s", online, "push", str(src), "/data/local/tmp/qw/big.bin", check=True, timeout=120)
    on_phone = emulator.phone.host_path("/data/local/tmp/qw/big.bin")
    assert on_phone.stat().st_size == src.stat().st_size
    back = tmp_path / "back.bin"
    adb("-s", online, "pull", "/data/local/tmp/qw/big.bin", str(back), check=True, timeout=120)
    assert sha256(back) == sha256(src) == sha256(on_phone)


def test_push_sync_skips_unchanged_and_ls_lists(online, emulator, tmp_path):
    src = random_file(tmp_path / "model.bin", 300_000)
    first = adb("-s", online, "push", "--sync", str(src), "/data/local/tmp/s/model.bin", check=True)
    assert "1 file pushed" in first.stdout
    again = adb("-s", online, "push", "--sync", str(src), "/data/local/tmp/s/model.bin", check=True)
    assert "0 files pushed, 1 skipped" in again.stdout
    # adb 29 compares mtimes only: a changed file with a new mtime is pushed again
    src.write_bytes(os.urandom(300_001))
    os.utime(src, (src.stat().st_atime, src.stat().st_mtime + 10))
    third = adb("-s", online, "push", "--sync", str(src), "/data/local/tmp/s/model.bin", check=True)
    assert "1 file pushed" in third.stdout

    listing = adb("-s", online, "ls", "/data/local/tmp/s", check=True).stdout
    names = {line.split()[-1]: line.split() for line in listing.splitlines()}
    assert int(names["model.bin"][1], 16) == 300_001
    host = emulator.phone.host_path("/data/local/tmp/s/model.bin")
    assert int(names["model.bin"][2], 16) == int(host.stat().st_mtime)


def test_push_to_a_full_disk_fails_and_leaves_no_partial_file(
    emulator_factory, adb_key, connect, tmp_path
):
    emu = emulator_factory(authorized_keys=[adb_key], free_mb=2)
    connect(emu.address)
    wait_state(emu.address, "device")
    src = random_file(tmp_path / "too-big.bin", 5 * 1024 * 1024)
    result = adb("-s", emu.address, "push", str(src), "/data/local/tmp/full/too-big.bin")
    assert result.returncode != 0
    # adb 29 prints sync errors on stdout when it is not a terminal
    assert "No space left on device" in result.stdout + result.stderr
    folder = emu.phone.host_path("/data/local/tmp/full")
    assert list(folder.iterdir()) == []
    # a file that fits still goes through
    small = random_file(tmp_path / "small.bin", 100_000)
    adb("-s", emu.address, "push", str(small), "/data/local/tmp/full/small.bin", check=True)


def test_dropped_connection_fails_the_push_cleanly(emulator_factory, adb_key, connect, tmp_path):
    emu = emulator_factory(authorized_keys=[adb_key], drop_after_bytes=3_000_000)
    connect(emu.address)
    wait_state(emu.address, "device")
    src = random_file(tmp_path / "dropped.bin", 8 * 1024 * 1024)
    result = adb("-s", emu.address, "push", str(src), "/data/local/tmp/drop/dropped.bin")
    assert result.returncode != 0
    # The phone notices the drop on its own clock: give it a moment to remove the partial file.
    folder = emu.phone.host_path("/data/local/tmp/drop")
    deadline = time.monotonic() + 5
    while folder.exists() and list(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists() or list(folder.iterdir()) == []
    # The emulator keeps serving: a new connection works (small enough not to be dropped).
    adb("disconnect", emu.address)
    connect(emu.address)
    wait_state(emu.address, "device")
    assert adb("-s", emu.address, "shell", "echo", "still here", check=True).stdout == (
        "still here\n"
    )
