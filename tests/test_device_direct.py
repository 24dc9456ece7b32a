"""The direct (adb-shell) Device against the emulated phone, over real loopback sockets."""

from __future__ import annotations

import hashlib
import math
import os
import time

import pytest

from qwenchat.device.direct import DirectDevice
from qwenchat.device.transport import Banner
from qwenchat.errors import DeviceError, DeviceUnauthorizedError, NoDeviceError

TMP = "/data/local/tmp"


def test_banner_gives_features(device):
    assert device.has_shell_v2
    assert {"shell_v2", "stat_v2"} <= device.features
    assert "SIMULATED" in device.banner.props["ro.product.model"]


def test_shell_exit_code_and_separate_stderr(device):
    result = device.shell("echo out; echo err >&2; exit 3")
    assert result.exit_code == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert device.shell("true").ok


def test_shell_v1_fallback_keeps_exit_code(device):
    # A phone without shell_v2: the same phone with the feature hidden from us.
    device.banner = Banner(features=frozenset())
    result = device.shell("echo out; echo err >&2; exit 5")
    assert result.exit_code == 5
    assert sorted(result.stdout.splitlines()) == [b"err", b"out"]  # merged, as v1 does
    assert device.shell("printf 'no newline'").stdout == b"no newline"
    stream = device.stream_shell("echo a; exit 2")
    assert b"".join(stream) == b"a\n"
    assert stream.exit_code == 2


def test_stream_keeps_raw_bytes_split_inside_a_character(device):
    text = "你好"  # 3 bytes each: cut the first character after 2 bytes
    data = text.encode()
    device.push_bytes(data[:2], f"{TMP}/part1")
    device.push_bytes(data[2:], f"{TMP}/part2")
    chunks = []
    with device.stream_shell(f"cat {TMP}/part1; sleep 0.3; cat {TMP}/part2") as stream:
        for chunk in stream:
            assert isinstance(chunk, bytes)
            chunks.append(chunk)
    assert chunks[0] == data[:2]  # not decoded, not mangled
    assert b"".join(chunks).decode() == text
    assert stream.exit_code == 0


def test_stream_exit_code_and_stderr(device):
    stream = device.stream_shell("echo one; echo oops >&2; exit 4")
    assert b"".join(stream) == b"one\n"
    assert stream.exit_code == 4
    assert stream.stderr == b"oops\n"


def test_push_pull_byte_identical_with_progress(device, tmp_path):
    payload = os.urandom(300_000)
    local = tmp_path / "blob.bin"
    local.write_bytes(payload)
    seen: list[int] = []
    device.push(local, f"{TMP}/q/blob.bin", mode=0o640, mtime=1_700_000_000, progress=seen.append)
    assert sum(seen) == len(payload) and len(seen) > 1
    back = tmp_path / "back.bin"
    device.pull(f"{TMP}/q/blob.bin", back)
    assert back.read_bytes() == payload
    assert device.pull_bytes(f"{TMP}/q/blob.bin") == payload
    st = device.stat(f"{TMP}/q/blob.bin")
    assert st is not None and st.size == len(payload)
    assert st.mode & 0o777 == 0o640
    assert st.mtime == 1_700_000_000
    assert not st.is_dir
    assert device.stat(f"{TMP}/q").is_dir


def test_stat_missing_is_none_and_pull_missing_raises(device, tmp_path):
    assert device.stat(f"{TMP}/does/not/exist") is None
    with pytest.raises(DeviceError):
        device.pull(f"{TMP}/does/not/exist", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_large_writes_do_not_desynchronise(device, tmp_path):
    # 5 MB: adb-shell packs DATA into WRTEs up to the 1 MiB max payload; a short write
    # would corrupt the stream. The phone's own sha256sum must agree, and the link stay usable.
    payload = os.urandom(5 * 1024 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(payload)
    device.push(local, f"{TMP}/big.bin")
    result = device.shell(f"sha256sum {TMP}/big.bin")
    assert result.text.split()[0] == hashlib.sha256(payload).hexdigest()
    assert device.pull_bytes(f"{TMP}/big.bin") == payload
    assert device.shell("echo still here").text == "still here\n"


def test_shell_timeout_raises_and_connection_stays_usable(device):
    with pytest.raises(DeviceError, match="stopped answering|did not finish"):
        device.shell("sleep 3", timeout=0.5)
    assert device.shell("echo ok").text == "ok\n"


def test_closing_a_stream_early_leaves_the_device_usable(device):
    stream = device.stream_shell("echo first; sleep 2; echo late")
    first = next(iter(stream))
    assert first == b"first\n"
    stream.close()
    assert device.shell("echo next").text == "next\n"


@pytest.mark.slow
def test_twelve_seconds_of_silence_before_first_byte(device):
    """A 7B model load is many seconds of silence: the stream must keep waiting."""
    start = time.monotonic()
    with device.stream_shell("sleep 12; echo hi", first_byte_timeout=None) as stream:
        out = b"".join(stream)
    assert out == b"hi\n"
    assert stream.exit_code == 0
    assert time.monotonic() - start >= 12  # it really waited (no shortcut in the emulator)


def test_unauthorized_key_waits_bounded_then_clear_error(emulator_factory, adb_key):
    phone = emulator_factory()  # auth on, our key not authorized, nobody accepts
    waits: list[str] = []
    with pytest.raises(DeviceUnauthorizedError, match="did not authorize"):
        DirectDevice.connect_tcp(phone.host, phone.port, auth_timeout=1.0, on_wait=waits.append)
    assert len(waits) == 1 and "Allow USB debugging" in waits[0]


def test_phone_accepting_the_key_connects(emulator_factory, adb_key):
    phone = emulator_factory(accept_new_keys=True)
    waits: list[str] = []
    with DirectDevice.connect_tcp(
        phone.host, phone.port, auth_timeout=5, on_wait=waits.append
    ) as dev:
        assert dev.shell("echo hi").text == "hi\n"
    # The phone accepted at once: no "waiting for Allow USB debugging?" line for a dialog
    # nobody had to answer (the unauthorized test shows the line when it is real).
    assert waits == []
    # Next time the key is known: no prompt either.
    waits.clear()
    with DirectDevice.connect_tcp(phone.host, phone.port, on_wait=waits.append) as dev:
        assert dev.shell("true").ok
    assert waits == []


def test_nothing_listening_is_no_device_error():
    import socket

    # Bound, not listening: refused, and no other test can take the port meanwhile.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(NoDeviceError, match="cannot reach"):
            DirectDevice.connect_tcp("127.0.0.1", port)


def test_device_info_of_the_emulated_phone(device, emulator):
    from qwenchat.device.info import read_device_info

    info = read_device_info(device, "/data/local/tmp/qwenchat")
    assert info.simulated
    assert "SIMULATED" in info.model
    assert info.serial == emulator.serial
    assert info.address == emulator.address
    assert info.soc == emulator.config.soc == "SM8750"
    assert info.hexagon_arch == "v79"
    assert info.android_version == emulator.config.android_version
    assert info.ram_mb == pytest.approx(emulator.config.ram_mb, abs=1)
    assert info.free_mb is not None and 0 < info.free_mb <= emulator.config.free_mb
    assert info.transport == "direct"


def test_unknown_soc_has_no_arch(emulator_factory, adb_key):
    from qwenchat.device.info import read_device_info

    phone = emulator_factory(authorized_keys=[adb_key], soc="SM7325")
    with DirectDevice.connect_tcp(phone.host, phone.port) as dev:
        info = read_device_info(dev, "/data/local/tmp/qwenchat")
    assert info.soc == "SM7325" and info.hexagon_arch is None


def test_fast_checksum_matches_adb_shell():
    from adb_shell import adb_message

    from qwenchat.device.transport import install_fast_checksum

    install_fast_checksum()
    original = adb_message.checksum.__wrapped__
    for size in (0, 1, 4095, 4096, 70_000, 1 << 20):
        data = os.urandom(size)
        assert adb_message.checksum(data) == original(data)
        assert adb_message.checksum(bytearray(data)) == original(bytearray(data))
    assert adb_message.checksum(b"\xff" * (1 << 20)) == (255 << 20) & 0xFFFFFFFF


def test_many_quick_sync_requests_never_hang(device):
    # A reply may overtake the OKAY for our request; adb-shell alone dropped it and hung.
    device.push_bytes(b"x", f"{TMP}/s.txt")
    for _ in range(1500):
        assert device.stat(f"{TMP}/s.txt").size == 1


def test_other_threads_work_while_a_stream_waits_in_silence(device):
    """A chat cancel thread must reach the phone while the main thread waits on a loading
    model: adb-shell held its transport lock in recv and starved it. It also failed about 1
    run in 15 when the waiting thread read the CLSE of the other thread's command (adb-shell
    dropped it; the test below makes that interleaving happen every time)."""
    import threading

    done = threading.Event()
    out: list[bytes] = []

    def wait_for_slow_command() -> None:
        with device.stream_shell("sleep 2; echo late", first_byte_timeout=None) as stream:
            out.append(b"".join(stream))
        done.set()

    waiter = threading.Thread(target=wait_for_slow_command)
    waiter.start()
    time.sleep(0.2)  # the waiter is now blocked on its silent stream
    assert device.shell("echo meanwhile", timeout=5).text == "meanwhile\n"
    device.push_bytes(os.urandom(1 << 20), f"{TMP}/meanwhile.bin")
    assert device.stat(f"{TMP}/meanwhile.bin").size == 1 << 20
    assert not done.is_set()  # all of that happened while the stream was still silent
    waiter.join(10)
    assert out == [b"late\n"]


def test_a_close_read_by_another_streams_reader_reaches_its_stream(device):
    """The cause of the two-thread intermittent, made deterministic. Stream B reads its own
    WRTEs (so adb-shell's packet store has no queue for it); stream A's reader then reads B's
    CLSE off the socket and stores it. adb-shell's store dropped a CLSE for a stream without
    a queue, so B waited for its end until the timeout."""
    from adb_shell import constants

    from qwenchat.device.shellproto import v2_service

    adb, io = device._adb, device._adb._io_manager
    slow = adb._open(v2_service("sleep 1; echo late"), 5, math.inf, None)
    fast = adb._open(v2_service("echo hi"), 5, math.inf, None)
    frames = bytearray()
    while not _has_exit_frame(frames):  # B reads its own output and exit code
        cmd, _a0, _a1, data = io.read([constants.WRTE], fast)
        frames += data
        adb._okay(fast)
    time.sleep(0.3)  # the phone has sent B's CLSE by now
    fast.transport_timeout_s = slow.transport_timeout_s = 5
    # A reads: the first packet on the socket is B's CLSE, then A's own output.
    cmd, *_ = io.read([constants.WRTE, constants.CLSE], slow, allow_zeros=True)
    assert cmd == constants.WRTE
    started = time.monotonic()
    cmd, *_ = io.read([constants.CLSE], fast, allow_zeros=True)
    assert cmd == constants.CLSE and time.monotonic() - started < 1  # from the store
    assert device.shell("echo still fine", timeout=5).text == "still fine\n"


def _has_exit_frame(frames: bytes) -> bool:
    """Shell v2 frames are <id:1><len:4 LE><payload>; id 3 carries the exit code."""
    at = 0
    while at + 5 <= len(frames):
        kind, size = frames[at], int.from_bytes(frames[at + 1 : at + 5], "little")
        if kind == 3:
            return True
        at += 5 + size
    return False


def test_a_port_that_speaks_another_protocol_is_named_at_once():
    """An SSH daemon greets first: its banner is no ADB packet, so we say so without waiting
    out the handshake timeout."""
    import socket
    import threading
    import time

    from qwenchat.device.direct import DirectDevice
    from qwenchat.errors import NoDeviceError

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def greet() -> None:
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        time.sleep(5)
        conn.close()

    threading.Thread(target=greet, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(NoDeviceError) as err:
        DirectDevice.connect_tcp("127.0.0.1", server.getsockname()[1], auth_timeout=5)
    assert time.monotonic() - started < 3
    assert "does not speak ADB: it answered 'SSH-2.0-OpenSSH" in err.value.message
    server.close()


def test_an_http_server_that_waits_silently_gets_one_line(monkeypatch):
    import http.server
    import threading

    from qwenchat.device import direct
    from qwenchat.errors import DeviceError

    monkeypatch.setattr(direct, "HANDSHAKE_TIMEOUT", 1.0)
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DeviceError) as err:
            direct.DirectDevice.connect_tcp("127.0.0.1", httpd.server_port, auth_timeout=5)
    finally:
        httpd.shutdown()
    assert "never answered the ADB handshake within 1 s" in err.value.message
    assert "HTTP server" in err.value.hint
