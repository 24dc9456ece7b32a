"""The emulated phone's sandbox and its processes: Android's shell user with no capability
and no network, one pid namespace for every stream, real signals and exit codes, /data of
a fixed size enforced by the kernel, files that survive a restart, and nothing of the host
writable. Commands go through the phone's real mksh and toybox."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp

from qwenchat.emulator import SIMULATED_MODEL, PhoneStartError


def connect(emu) -> AdbDeviceTcp:
    device = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=30)
    device.connect(rsa_keys=None, auth_timeout_s=5, read_timeout_s=30)
    return device


@pytest.fixture
def emu(emulator_factory):
    return emulator_factory(auth=False, free_mb=64)


def sh(emu, command: str, stdin: bytes = b""):
    return emu.phone.sh(command, stdin=stdin, timeout=60)


# ---- who runs, with what -------------------------------------------------------------------


def test_android_shell_toolbox_and_user(shared_emulator):
    emu = shared_emulator
    assert "MIRBSD KSH" in sh(emu, "echo $KSH_VERSION").out
    toybox = sh(emu, "toybox --version")
    assert toybox.exit_code == 0 and toybox.out.startswith("toybox")
    assert sh(emu, "id").out.startswith("uid=2000(shell) gid=2000(shell)")
    assert sh(emu, "readlink /system/bin/ls; readlink /system/bin/tr").out == "toybox\nbusybox\n"
    assert sh(emu, "echo hello | tr a-z A-Z; expr 6 \\* 7").out == "HELLO\n42\n"
    assert sh(emu, "exec /bin/sh -c id").out.startswith("uid=2000(shell)")  # /bin -> /system/bin


def test_simulated_everywhere_it_speaks_for_the_phone(shared_emulator):
    emu = shared_emulator
    assert sh(emu, "getprop ro.product.model").out == SIMULATED_MODEL + "\n"
    assert "SIMULATED" in sh(emu, "cat /proc/version").out
    assert "SIMULATED" in sh(emu, "cat /proc/cpuinfo").out
    assert sh(emu, "getprop ro.qwenchat.simulated; getprop ro.kernel.qemu").out == "1\n\n"
    assert sh(emu, "getprop no.such.prop fallback").out == "fallback\n"
    props = sh(emu, "getprop").out
    assert "[ro.soc.model]: [SM8750]" in props and "[ro.build.version.sdk]: [35]" in props
    result = sh(emu, "setprop ro.x 1")
    assert result.exit_code == 1 and "Failed to set property" in result.err


def test_no_capabilities_no_new_privileges(shared_emulator):
    emu = shared_emulator
    status = sh(emu, "cat /proc/self/status").out
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert re.search(rf"^{field}:\s+0+$", status, re.M), field
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert sh(emu, "cat /proc/self/uid_map").out.split()[:1] == ["2000"]  # only shell exists


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("mkdir -p /data/local/tmp/m; mount -t tmpfs x /data/local/tmp/m", ""),
        ("mkdir -p /data/local/tmp/m; busybox mount -t tmpfs x /data/local/tmp/m", "denied"),
        ("mknod /data/local/tmp/null c 1 3", "not permitted"),
        ("chroot / /system/bin/true", "not permitted"),
        ("nc -l -p 5555", ""),
        ("nc 127.0.0.1 5037 </dev/null", ""),
        ("unshare -U true", ""),
        ("ping -c 1 -W 1 127.0.0.1", ""),
    ],
)
def test_privileged_and_network_operations_fail(shared_emulator, command, why):
    emu = shared_emulator
    started = time.monotonic()
    result = sh(emu, command)
    assert result.exit_code != 0, (command, result.out, result.err)
    assert why in (result.err + result.out).lower()
    assert time.monotonic() - started < 10  # refused, not waiting for a peer
    assert "/data/local/tmp/m" not in sh(emu, "cat /proc/mounts").out


def test_the_kernel_refuses_mount_and_chroot_system_calls(shared_emulator):
    emu = shared_emulator
    """toybox's mount gives up before asking the kernel (it is not root): ask it directly."""
    from qwenchat.emulator.hostlend import lending

    code = (
        "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
        "os.makedirs('/data/local/tmp/m', exist_ok=True); "
        "r1 = libc.mount(b'x', b'/data/local/tmp/m', b'tmpfs', 0, None); e1 = ctypes.get_errno(); "
        "r2 = libc.chroot(b'/data/local/tmp'); e2 = ctypes.get_errno(); "
        "r3 = libc.unshare(0x10000000); e3 = ctypes.get_errno(); "  # CLONE_NEWUSER
        "print(r1, e1, r2, e2, r3, e3)"
    )
    result = sh(emu, f'{lending().python} -S -E -s -c "{code}"')
    r1, e1, r2, e2, r3, e3 = (int(v) for v in result.out.split())
    assert (r1, e1, r2, e2) == (-1, errno.EPERM, -1, errno.EPERM), result.out
    assert r3 == -1 and e3 in (errno.EPERM, errno.ENOSPC)  # bwrap --disable-userns


def test_only_data_is_writable_and_lent_files_are_read_only(shared_emulator):
    emu = shared_emulator
    from qwenchat.emulator.hostlend import lending

    mounts = [line.split() for line in sh(emu, "cat /proc/self/mountinfo").out.splitlines()]
    writable = {m[4] for m in mounts if "rw" in m[5].split(",")}
    devices = {f"/dev/{d}" for d in ("null", "zero", "full", "random", "urandom", "tty")}
    assert writable <= {"/data", "/storage/emulated/0", "/proc", "/dev/pts", *devices}, writable
    lent = lending()
    for item in lent.files:
        probe = item.dest if item.source.is_file() else item.dest + "/probe"
        result = sh(emu, f"echo x > '{probe}'")
        assert result.exit_code != 0 and "Read-only file system" in result.err, item.dest
    assert sh(emu, "mkdir /x").exit_code != 0
    assert "Read-only file system" in sh(emu, "touch /system/bin/x /etc/x").err


def test_data_is_laid_out_as_on_a_phone(emu):
    assert "Permission denied" in sh(emu, "ls /data").err  # system's, 0771
    assert "Permission denied" in sh(emu, "mkdir /data/mine").err
    result = sh(emu, "cd /data/local/tmp && echo ok > f && cat f && rm f && echo x > /sdcard/s "
                     "&& cat /storage/emulated/0/s")  # fmt: skip
    assert result.out == "ok\nx\n", result.err


# ---- processes -------------------------------------------------------------------------------


def test_one_pid_namespace_for_every_stream(emu):
    """A process started on one connection is seen and stopped from another, as on a phone."""
    first, second = connect(emu), connect(emu)
    try:
        got: dict[str, str] = {}
        job = threading.Thread(target=lambda: got.setdefault(
            "out", first.shell("sleep 30 & echo $!; wait; echo waited", read_timeout_s=60)))  # fmt: skip
        job.start()
        deadline = time.monotonic() + 10
        pids: list[str] = []
        while not pids and time.monotonic() < deadline:
            pids = second.shell("pidof sleep").split()
        assert len(pids) == 1
        assert re.search(rf"^\s*{pids[0]}\s+sleep\s*$", second.shell("ps -A -o pid,name"), re.M)
        assert second.shell(f"kill {pids[0]}; echo $?") == "0\n"
        job.join(15)
        assert got["out"] == f"{pids[0]}\nwaited\n"
        assert second.shell("pidof sleep") == ""
        assert second.shell("ps -A -o pid,name").split()[2:4] == ["1", "init"]
    finally:
        first.close()
        second.close()


def test_exit_codes_and_signals_are_the_kernels(emu):
    assert sh(emu, "exit 3").exit_code == 3
    assert sh(emu, "kill -9 $$").exit_code == 128 + 9
    assert sh(emu, "sh -c 'kill -TERM $$'; echo $?").out == f"{128 + 15}\n"
    assert sh(emu, "cat", stdin=b"through stdin\n").out == "through stdin\n"


def _descendants(pid: int) -> list[int]:
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return children + [d for c in children for d in _descendants(c)]


def test_the_phones_processes_end_with_the_phone(emulator_factory):
    emu = emulator_factory(auth=False)
    sh(emu, "sleep 300 >/dev/null 2>&1 &")
    phone = _descendants(emu.phone.sandbox.proc.pid)  # bwrap's child is the phone's init
    assert len(phone) >= 2  # init and the orphaned sleep it adopted
    emu.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in phone)


# ---- /data: size, persistence ----------------------------------------------------------------


def test_free_space_holds_for_shell_writes_and_pushes(emulator_factory, tmp_path):
    emu = emulator_factory(auth=False, free_mb=4)
    df = sh(emu, "df -k /data/local/tmp").out.splitlines()[1].split()
    assert df[-1] == "/data" and int(df[1]) == 4096 and int(df[3]) <= 4096
    result = sh(emu, "dd if=/dev/zero of=/data/local/tmp/big bs=1048576 count=8")
    assert result.exit_code != 0 and "No space left on device" in result.err
    result = sh(emu, "cat /dev/zero > /sdcard/big2")  # the sdcard view is the same /data
    assert result.exit_code != 0 and "No space left on device" in result.err
    sh(emu, "rm -f /data/local/tmp/big /sdcard/big2")
    device = connect(emu)
    try:
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(6 * 1024 * 1024))
        with pytest.raises(Exception, match="No space left on device"):
            device.push(str(big), "/data/local/tmp/big.bin")
        assert sh(emu, "ls /data/local/tmp").out == ""  # no partial file, no temp file
        small = tmp_path / "small.bin"
        small.write_bytes(os.urandom(3 * 1024 * 1024))
        device.push(str(small), "/data/local/tmp/small.bin")
        digest = hashlib.sha256(small.read_bytes()).hexdigest()
        assert sh(emu, "sha256sum /data/local/tmp/small.bin").out.split()[0] == digest
        result = sh(emu, "dd if=/dev/zero of=/data/local/tmp/more bs=1048576 count=2")
        assert "No space left on device" in result.err  # the push used the space
    finally:
        device.close()


def test_the_phones_files_survive_a_restart(emulator_factory, tmp_path):
    root = tmp_path / "phone"
    emu = emulator_factory(auth=False, root=root, free_mb=32)
    sh(emu, "mkdir -p /data/local/tmp/keep && echo kept > /data/local/tmp/keep/f && "
            "ln -s f /data/local/tmp/keep/l")  # fmt: skip
    emu.stop()
    assert not (root / "fs" / "data" / "local").exists()  # released: only the image holds it
    again = emulator_factory(auth=False, root=root, free_mb=48)
    assert sh(again, "cat /data/local/tmp/keep/l").out == "kept\n"
    assert int(sh(again, "df -k /data").out.splitlines()[1].split()[1]) == 48 * 1024


# ---- refusing to start -------------------------------------------------------------------------


def test_a_kernel_that_refuses_namespaces_is_one_line(tmp_path, monkeypatch):
    """No user namespaces: the phone does not start (no weaker sandbox), and says why."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the "
        "kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer

    server = EmulatorServer(EmulatorConfig(root=tmp_path / "emu"), port=0)
    with pytest.raises(PhoneStartError) as info:
        server.start()
    message = str(info.value)
    assert "\n" not in message and "refuses" in message and "user namespaces" in message
    assert not (tmp_path / "emu" / "fs" / "data" / "local").exists()  # /data released

    cli = subprocess.run(
        [sys.executable, "-m", "qwenchat", "emulator", "start", "--port", "0", "--root",
         str(tmp_path / "emu2")],  # fmt: skip
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "500"},
    )  # fmt: skip
    assert cli.returncode != 0 and "Traceback" not in cli.stderr
    errors = [line for line in cli.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "user namespaces" in errors[0], cli.stderr


def test_a_root_from_the_old_emulator_keeps_its_files(emulator_factory, tmp_path):
    """Before /data was an image, the phone's files were plain folders under fs/."""
    root = tmp_path / "old"
    bundle = root / "fs" / "data" / "local" / "tmp" / "qwenchat"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text('{"old": true}')
    (bundle / "link").symlink_to("/etc/passwd")  # moved as a link, never followed
    (root / "fs" / "sdcard").mkdir()
    (root / "fs" / "sdcard" / "photo.txt").write_text("old sdcard\n")
    (root / "fs" / "proc").mkdir()
    emu = emulator_factory(auth=False, root=root, free_mb=16)
    assert sh(emu, "cat /data/local/tmp/qwenchat/manifest.json").out == '{"old": true}'
    assert sh(emu, "readlink /data/local/tmp/qwenchat/link").out == "/etc/passwd\n"
    assert sh(emu, "cat /sdcard/photo.txt").out == "old sdcard\n"
    assert not (root / "fs" / "proc").exists() and not (root / "fs" / "sdcard").exists()


def test_hash_commands_print_what_toybox_prints(emu):
    """sha256sum & co. hash at OpenSSL's speed (as Android's BoringSSL toybox does) but must
    print exactly what the real toybox prints."""
    sh(emu, "cd /data/local/tmp && echo abc > a && printf '' > e && mkdir d && "
            "dd if=/dev/urandom of=big bs=1048576 count=3 2>/dev/null")  # fmt: skip
    for tool in ("md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum"):
        assert sh(emu, f"readlink /system/bin/{tool}").out == "qwenchat-hashsum\n"
        for args in ("a e big", "a missing e", "-b a", "a d", "-", "-x a", "--help"):
            ours = sh(emu, f"cd /data/local/tmp && echo in | {tool} {args}; echo rc=$?")
            real = sh(emu, f"cd /data/local/tmp && echo in | toybox {tool} {args}; echo rc=$?")
            assert (ours.out, ours.err) == (real.out, real.err), (tool, args)
    sums = sh(emu, "cd /data/local/tmp && sha256sum a big > sums && echo 0  e >> sums && "
                   "sha256sum -c sums; echo rc=$?")  # fmt: skip
    assert sums.out == "a: OK\nbig: OK\ne: FAILED\nrc=1\n"
