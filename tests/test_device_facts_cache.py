"""The phone's facts remembered between runs never give a wrong answer.

``read_device_info`` lists the properties and memory only when the host remembers nothing
for the phone as it is now (serial, boot id, build fingerprint). Failure modes, each tested
against real emulated phones (their getprop reads /system/build.prop, their boot id is new
at every start):

- nothing is remembered: a property changed behind the cache's back (same serial, boot and
  build) is still listed afresh on every read (the cache is not used at all);
- another phone answers on the same address: the old phone's facts are given;
- the phone was re-flashed (new fingerprint, same boot): the old build's facts are given;
- the phone rebooted (new boot id, e.g. with other RAM): the old boot's facts are given;
- free space (which changes with every push) comes from the cache;
- an unreadable cache file breaks the read;
- the check costs a second round trip.

Oracle: the values each emulated phone was configured with, written out here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenchat.device import facts_cache
from qwenchat.device.direct import DirectDevice
from qwenchat.device.info import read_device_info
from qwenchat.emulator.config import EmulatorConfig
from qwenchat.emulator.server import EmulatorServer

WORK = "/data/local/tmp/qwenchat"


def _start(root: Path, port: int = 0, **overrides) -> EmulatorServer:
    server = EmulatorServer(EmulatorConfig(root=root, auth=False, **overrides), port=port)
    server.start()
    return server


def _read(port: int):
    with DirectDevice.connect_tcp("127.0.0.1", port, auth_timeout=5) as dev:
        calls = []
        real = dev.shell

        def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls.append(args[0])
            return real(*args, **kwargs)

        dev.shell = counted
        info = read_device_info(dev, WORK)
    assert len(calls) == 1  # one round trip, whatever the cache holds
    return info


def _edit_prop(server: EmulatorServer, name: str, value: str) -> None:
    path = server.phone.config.fs_root / "system" / "build.prop"
    lines = [
        f"{name}={value}" if line.startswith(f"{name}=") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def servers():
    started: list[EmulatorServer] = []
    yield started
    for server in started:
        server.stop()


def test_cache_is_used_and_free_space_is_not_cached(tmp_path, servers):
    server = _start(tmp_path / "a", serial="emulator-qwenchat-11111111", ram_mb=12288, free_mb=1024)
    servers.append(server)
    if not server.phone.storage.enforced:  # df would show the host's disk, shared with others
        pytest.fail(f"/data cannot be limited here: {server.phone.storage.not_enforced}")
    first = _read(server.port)
    assert (first.serial, first.ram_mb, first.model) == (
        "emulator-qwenchat-11111111", 12288, "qwenchat emulator (SIMULATED)"
    )
    # Same serial, boot and build: the remembered model stands (proof the cache is used),
    # free space is read again.
    _edit_prop(server, "ro.product.model", "changed behind the cache (SIMULATED)")
    with DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5) as dev:
        dev.shell(f"mkdir -p {WORK} && dd if=/dev/zero of={WORK}/filler bs=1048576 count=64")
    second = _read(server.port)
    assert second.model == "qwenchat emulator (SIMULATED)"
    assert second.free_mb is not None and first.free_mb is not None
    assert second.free_mb <= first.free_mb - 60


def test_reflashed_phone_is_read_again(tmp_path, servers):
    server = _start(tmp_path / "a", serial="emulator-qwenchat-22222222")
    servers.append(server)
    assert _read(server.port).android_version == "15"
    _edit_prop(server, "ro.build.version.release", "16")
    _edit_prop(server, "ro.build.fingerprint", "qwenchat/x/y:16/SIMULATED/2:user/release-keys")
    info = _read(server.port)
    assert (info.android_version, info.fingerprint) == (
        "16", "qwenchat/x/y:16/SIMULATED/2:user/release-keys"
    )


def test_another_phone_on_the_same_address(tmp_path, servers):
    first = _start(tmp_path / "a", serial="emulator-qwenchat-33333333", soc="SM8750", ram_mb=16384)
    port = first.port
    a = _read(port)
    first.stop()
    second = _start(tmp_path / "b", port=port, serial="emulator-qwenchat-44444444",
                    soc="SM8650", ram_mb=12288)
    servers.append(second)
    b = _read(port)
    assert a.address == b.address == f"127.0.0.1:{port}"
    assert (b.serial, b.soc, b.hexagon_arch, b.ram_mb) == (
        "emulator-qwenchat-44444444", "SM8650", "v75", 12288
    )


def test_rebooted_phone_is_read_again(tmp_path, servers):
    root = tmp_path / "a"
    server = _start(root, serial="emulator-qwenchat-55555555", ram_mb=16384)
    port = server.port
    assert _read(port).ram_mb == 16384
    server.stop()
    # Same phone, same address, same build; a new boot (a new boot id) with other RAM.
    server = _start(root, port=port, serial="emulator-qwenchat-55555555", ram_mb=8192)
    servers.append(server)
    assert _read(port).ram_mb == 8192


def test_unreadable_cache_file_means_a_full_read(tmp_path, servers):
    server = _start(tmp_path / "a", serial="emulator-qwenchat-66666666", ram_mb=12288)
    servers.append(server)
    _read(server.port)
    path = facts_cache._path(f"127.0.0.1:{server.port}")
    assert path.is_file()
    path.write_text("{not json")
    _edit_prop(server, "ro.product.model", "read afresh (SIMULATED)")
    assert _read(server.port).model == "read afresh (SIMULATED)"
