"""The emulated phone against adb-shell (the Python client qwenchat's direct transport
builds on), plus wire-level checks with a minimal raw client over a real socket."""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

from qwenchat.emulator.adbd import protocol as p


def connect(emu, key_path, *, auth_timeout_s: float = 2.0) -> AdbDeviceTcp:
    device = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=5)
    signers = [PythonRSASigner.FromRSAKeyPath(str(key_path))] if key_path else None
    device.connect(rsa_keys=signers, auth_timeout_s=auth_timeout_s, read_timeout_s=5)
    return device


@pytest.fixture
def device(emulator, adb_key):
    dev = connect(emulator, adb_key)
    yield dev
    dev.close()


def test_shell_and_streaming_shell(device):
    assert device.shell("echo hello") == "hello\n"
    # shell: (v1) merges stderr into the output and has no exit code
    assert sorted(device.shell("echo a; echo b >&2").split()) == ["a", "b"]
    chunks = list(device.streaming_shell("echo one; echo two", decode=False))
    assert b"".join(chunks) == b"one\ntwo\n"


def test_push_pull_stat_list(device, emulator, tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(700_000))
    device.push(str(src), "/data/local/tmp/as/weights.bin", mtime=1_700_000_000)
    host = emulator.phone.host_path("/data/local/tmp/as/weights.bin")
    assert host.read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    device.pull("/data/local/tmp/as/weights.bin", str(back))
    assert back.read_bytes() == src.read_bytes()

    mode, size, mtime = device.stat("/data/local/tmp/as/weights.bin")
    assert (mode & 0o170000, size, mtime) == (0o100000, 700_000, 1_700_000_000)
    assert device.stat("/data/local/tmp/as/missing") == (0, 0, 0)
    names = {bytes(e.filename).decode(): e.size for e in device.list("/data/local/tmp/as")}
    assert names["weights.bin"] == 700_000 and "." in names


def test_answers_never_overtake_the_okay(device, tmp_path):
    """adb-shell drops a WRTE that arrives before the OKAY it waits for, then times out: the
    phone must OKAY each WRTE before its service answers. A race, so exercise it often."""
    small = tmp_path / "p.txt"
    small.write_bytes(b"x" * 140)
    for i in range(300):
        assert device.stat("/data/local/tmp", read_timeout_s=3)[0] & 0o040000
        device.push(str(small), f"/data/local/tmp/p{i % 3}.txt", read_timeout_s=3)
        assert device.shell("echo hi", read_timeout_s=3) == "hi\n"


def test_push_outside_writable_places_is_refused_by_the_kernel(device, emulator, tmp_path):
    src = tmp_path / "evil"
    src.write_bytes(b"x")
    with pytest.raises(Exception, match="Read-only file system"):
        device.push(str(src), "/system/bin/evil")
    assert not emulator.phone.host_path("/system/bin/evil").exists()
    with pytest.raises(Exception, match="Permission denied"):  # /data is system's, 0771
        device.push(str(src), "/data/evil")
    with pytest.raises(Exception, match="Read-only file system"):
        device.push(str(src), "/evil")


def test_wrong_key_is_refused(emulator, tmp_path):
    wrong = tmp_path / "wrongkey"
    keygen(str(wrong))
    with pytest.raises(Exception):  # noqa: B017 - adb-shell times out waiting for CNXN
        connect(emulator, wrong, auth_timeout_s=0.5)
    pending = (emulator.config.state_dir / "pending_keys").read_text()
    assert wrong.with_name("wrongkey.pub").read_text().split()[0] in pending
    assert pending.split()[0] not in (emulator.config.state_dir / "adb_keys").read_text()


def test_no_auth_accepts_any_client(emulator_factory, tmp_path):
    emu = emulator_factory(auth=False)
    device = connect(emu, None)
    try:
        assert device.shell("echo free") == "free\n"
    finally:
        device.close()


# --- wire level ------------------------------------------------------------------------
class RawClient:
    """Just enough of the host side of ADB to check what clients do not expose."""

    def __init__(self, port: int, version: int = p.VERSION_NO_CHECKSUM) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.version = version
        self.send(p.CNXN, version, 256 * 1024, b"host::\0")
        self.banner = self.expect(p.CNXN)

    def send(self, cmd: int, a0: int, a1: int, data: bytes = b"") -> None:
        self.sock.sendall(p.encode(cmd, a0, a1, data, with_checksum=True))

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf

    def read(self) -> p.Packet:
        cmd, a0, a1, length, check, magic = p.HEADER.unpack(self.recv_exact(24))
        data = self.recv_exact(length) if length else b""
        assert magic == cmd ^ 0xFFFFFFFF
        if self.version == p.VERSION_CHECKSUM and data:
            assert check == sum(data) & 0xFFFFFFFF
        return p.Packet(cmd, a0, a1, data)

    def expect(self, cmd: int) -> bytes:
        pkt = self.read()
        assert pkt.command == cmd, f"got {pkt.name}"
        return pkt.data

    def open(self, service: str, local_id: int = 1) -> p.Packet:
        self.send(p.OPEN, local_id, 0, service.encode() + b"\0")
        return self.read()

    def collect(self, local_id: int, remote_id: int) -> bytes:
        """Read WRTEs (acknowledging each) until CLSE."""
        out = b""
        while True:
            pkt = self.read()
            if pkt.command == p.CLSE:
                return out
            assert pkt.command == p.WRTE
            out += pkt.data
            self.send(p.OKAY, local_id, remote_id)


@pytest.fixture
def raw(emulator_factory):
    emu = emulator_factory(auth=False)
    client = RawClient(emu.port)
    yield client, emu
    client.sock.close()


def test_banner_advertises_exactly_the_implemented_features(raw):
    client, _emu = raw
    banner = client.banner.decode()
    assert banner.startswith("device::")
    assert "ro.product.model=qwenchat emulator (SIMULATED)" in banner
    assert banner.endswith(";features=shell_v2,stat_v2,ls_v2,fixed_push_mkdir")


def test_checksummed_protocol_version(emulator_factory):
    emu = emulator_factory(auth=False)
    client = RawClient(emu.port, version=p.VERSION_CHECKSUM)  # read() verifies the sums
    okay = client.open("shell:echo summed")
    assert client.collect(1, okay.arg0) == b"summed\n"


def test_unknown_service_is_refused_and_clse_is_answered(raw):
    client, _emu = raw
    assert client.open("frobnicate:now").command == p.CLSE
    okay = client.open("shell:sleep 5", local_id=2)
    assert okay.command == p.OKAY
    client.send(p.CLSE, 2, okay.arg0)
    assert client.read().command == p.CLSE  # adb-shell waits 10 s without this answer


def test_shell_v2_frames_spanning_writes(raw):
    client, _emu = raw
    okay = client.open("shell,v2,raw:cat; echo done >&2; exit 3")
    stdin = struct.pack("<BI", 0, 6) + b"hello\n" + struct.pack("<BI", 4, 0)
    client.send(p.WRTE, 1, okay.arg0, stdin[:3])  # a frame header split across two WRTEs
    assert client.expect(p.OKAY) == b""
    client.send(p.WRTE, 1, okay.arg0, stdin[3:])
    assert client.expect(p.OKAY) == b""
    data = client.collect(1, okay.arg0)
    frames = []
    while data:
        ident, length = struct.unpack_from("<BI", data)
        frames.append((ident, data[5 : 5 + length]))
        data = data[5 + length :]
    assert (1, b"hello\n") in frames and (2, b"done\n") in frames
    assert frames[-1] == (3, b"\x03")


def _wait_for_file(emu, path: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = emu.phone.sh(f"cat {path} 2>/dev/null")
        if result.out:
            return result.out
        time.sleep(0.05)
    return ""


@pytest.mark.parametrize("service", ["shell,v2,raw:", "shell:", "exec:"])
def test_closing_the_stream_hangs_the_shell_up(raw, service):
    """As adbd: the client closing a stream sends SIGHUP to the shell (v2: by the phone's
    init; shell:/exec: have a pty, whose hang-up the kernel signals)."""
    client, emu = raw
    script = ("trap 'echo HUP > /data/local/tmp/hup; exit 0' HUP; echo ready; "
              "while :; do sleep 0.05; done")  # fmt: skip
    okay = client.open(service + script)
    assert okay.command == p.OKAY
    seen = b""
    while b"ready" not in seen:
        pkt = client.read()
        assert pkt.command == p.WRTE, pkt.name
        seen += pkt.data
        client.send(p.OKAY, 1, okay.arg0)
    client.send(p.CLSE, 1, okay.arg0)
    assert _wait_for_file(emu, "/data/local/tmp/hup") == "HUP\n"


def test_shell_and_exec_get_a_raw_terminal_v2_does_not(raw):
    client, _emu = raw
    okay = client.open("shell:tty; printf 'a\\nb\\n'")
    assert client.collect(1, okay.arg0) == b"/dev/pts/0\na\nb\n"  # raw: no \r added
    okay = client.open("exec:tty", local_id=2)
    assert client.collect(2, okay.arg0).startswith(b"/dev/pts/")
    okay = client.open("shell,v2,raw:tty", local_id=3)
    data = client.collect(3, okay.arg0)
    assert b"not a tty" in data and data.endswith(struct.pack("<BI", 3, 1) + b"\x01")


def test_sync_requests_packed_in_one_write_and_symlinks_stay_inside(raw, tmp_path):
    client, emu = raw
    okay = client.open("sync:")
    remote = okay.arg0
    target = b"/data/local/tmp/real.txt"
    send_file = b"/data/local/tmp/real.txt,33188"
    send_link = b"/data/local/tmp/link," + str(0o120777).encode()
    # Two SENDs, a STAT through the symlink and a QUIT, all in one WRTE.
    blob = (
        struct.pack("<4sI", b"SEND", len(send_file)) + send_file
        + struct.pack("<4sI", b"DATA", 5) + b"real\n" + struct.pack("<4sI", b"DONE", 1_600_000_000)
        + struct.pack("<4sI", b"SEND", len(send_link)) + send_link
        + struct.pack("<4sI", b"DATA", len(target)) + target
        + struct.pack("<4sI", b"DONE", 0)
        + struct.pack("<4sI", b"STA2", 20) + b"/data/local/tmp/link"
    )  # fmt: skip
    client.send(p.WRTE, 1, remote, blob + struct.pack("<4sI", b"QUIT", 0))
    assert client.expect(p.OKAY) == b""
    data = client.collect(1, remote)
    assert data[:16] == struct.pack("<4sI", b"OKAY", 0) * 2
    stat = struct.unpack("<4sIQQIIIIQqqq", data[16 : 16 + 72])
    assert stat[0] == b"STA2" and stat[1] == 0 and stat[8] == 5 and stat[10] == 1_600_000_000
    link = emu.config.fs_root / "data/local/tmp/link"
    assert link.is_symlink() and os.readlink(link) == target.decode()
    # the link's absolute target resolves inside the phone, where it is the pushed file...
    assert emu.phone.sh("cat /data/local/tmp/link").out == "real\n"
    # ...and the host's view of the phone never follows a link the phone made
    with pytest.raises(OSError) as info:
        link.read_bytes()
    assert info.value.errno == errno.ELOOP


# --- the CLI's daemon ------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qwenchat", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_daemon_start_status_authorize_stop(tmp_path):
    root = tmp_path / "emu"
    started = _cli("start", "--port", "0", "--root", str(root), "--time-scale", "0.1")
    assert started.returncode == 0, started.stderr
    assert "SIMULATED phone — not a real device" in started.stdout
    try:
        status = json.loads(_cli("status", "--root", str(root), "--json").stdout)
        assert status["running"] and status["simulated"] and status["time_scale"] == 0.1
        # Remembered like `qwenchat connect`: phone commands find it without --connect.
        from qwenchat.device.endpoints import load_endpoints

        assert [e.address for e in load_endpoints()] == [status["address"]]
        again = _cli("start", "--port", "0", "--root", str(root))
        assert again.returncode != 0 and "already runs" in again.stderr

        # A new key waits until `authorize`, then the same client gets in.
        key = tmp_path / "clikey"
        keygen(str(key))
        emu = type("Emu", (), {"host": "127.0.0.1", "port": status["port"]})
        with pytest.raises(Exception):  # noqa: B017 - unauthorized: adb-shell times out
            connect(emu, key, auth_timeout_s=0.3)
        listed = _cli("authorize", "--root", str(root))
        assert listed.returncode == 0 and "authorized" in listed.stdout
        device = connect(emu, key)
        assert device.shell("echo daemon") == "daemon\n"
        device.close()
    finally:
        stopped = _cli("stop", "--root", str(root))
    assert stopped.returncode == 0
    assert load_endpoints() == []  # stop forgets it
    assert not (root / "state" / "emulator.json").exists()
    assert _cli("status", "--root", str(root)).returncode == 1


def test_cli_cleans_up_a_stale_state_file(tmp_path):
    root = tmp_path / "emu"
    (root / "state").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "state" / "emulator.json").write_text(
        json.dumps({"pid": dead.pid, "port": 1, "serial": "x", "address": "127.0.0.1:1"})
    )
    assert _cli("status", "--root", str(root)).returncode == 1
    assert not (root / "state" / "emulator.json").exists()
