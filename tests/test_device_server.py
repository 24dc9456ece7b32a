"""The adb-server Device: the emulated phone held by Google's adb server (Debian's adb 29)
on the suite's private port, reached through adbutils and our own sockets."""

from __future__ import annotations

import os

import pytest

from qwenchat.device.endpoints import parse_endpoint, remember
from qwenchat.device.select import list_devices, open_device

pytestmark = pytest.mark.google_adb
TMP = "/data/local/tmp"


def test_shell_exit_code_and_stderr(server_device):
    assert server_device.has_shell_v2
    result = server_device.shell("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_stream_is_raw_and_reports_exit(server_device):
    data = "你好".encode()
    server_device.push_bytes(data[:2], f"{TMP}/s1")
    server_device.push_bytes(data[2:], f"{TMP}/s2")
    with server_device.stream_shell(f"cat {TMP}/s1; sleep 0.3; cat {TMP}/s2; exit 6") as stream:
        chunks = list(stream)
    assert chunks[0] == data[:2]
    assert b"".join(chunks) == data
    assert stream.exit_code == 6


def test_push_pull_stat(server_device, tmp_path):
    payload = os.urandom(2 * 1024 * 1024 + 123)
    local = tmp_path / "f.bin"
    local.write_bytes(payload)
    seen: list[int] = []
    server_device.push(
        local, f"{TMP}/srv/f.bin", mode=0o600, mtime=1_650_000_000, progress=seen.append
    )
    assert sum(seen) == len(payload)
    assert server_device.pull_bytes(f"{TMP}/srv/f.bin") == payload
    server_device.pull(f"{TMP}/srv/f.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == payload
    st = server_device.stat(f"{TMP}/srv/f.bin")
    assert (st.size, st.mode & 0o777, st.mtime) == (len(payload), 0o600, 1_650_000_000)
    assert server_device.stat(f"{TMP}/srv/missing") is None


def test_auto_prefers_the_server_when_it_holds_the_phone(server_device, emulator):
    remember(parse_endpoint(emulator.address))
    summaries = list_devices(transport="auto")
    assert [(s.serial, s.transport) for s in summaries] == [(emulator.address, "server")]
    with open_device() as dev:
        assert dev.transport_name == "server"
    with open_device(connect=emulator.address) as dev:
        assert dev.transport_name == "server"
    with open_device(serial=emulator.serial) as dev:  # ro.serialno through the server
        assert dev.transport_name == "server"
    with open_device(transport="direct") as dev:
        assert dev.transport_name == "direct"
        assert dev.shell("echo both").text == "both\n"


def test_device_info_through_the_server(server_device, emulator):
    from qwenchat.device.info import read_device_info

    info = read_device_info(server_device, "/data/local/tmp/qwenchat")
    assert info.simulated and info.hexagon_arch == "v79" and info.transport == "server"
    assert info.serial == emulator.serial
