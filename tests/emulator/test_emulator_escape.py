"""Escape attempts against the emulated phone: its shell (the real mksh and toybox, uid 2000
in its sandbox) and its sync service. Nothing outside the phone's root may be read or
written: absolute host paths, `..` chains, symlinks made on the phone (absolute, relative,
to the emulator's own folders, in loops), /proc/self/root, hard links, mounts, push/pull
targets, and the race of a directory flipped into a symlink while other streams read,
write and push through it.

The bait is a host folder holding a secret, outside the emulator's root; every test checks
the secret never shows and the folder never changes. The race runs
``QWENCHAT_ESCAPE_TRIES`` rounds (1,000 by default; ``make escape-race`` runs 10,000).
"""

from __future__ import annotations

import errno
import os
import secrets
import subprocess
import threading
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp

from qwenchat.emulator.rootfs import PASSWD

SECRET = "qwenchat-host-secret-" + secrets.token_hex(8)
HOST_ONLY_PASSWD = [
    line
    for line in Path("/etc/passwd").read_text().splitlines()
    if line and line.split(":")[0] not in {p.split(":")[0] for p in PASSWD.splitlines()}
]
RACE_TRIES = int(os.environ.get("QWENCHAT_ESCAPE_TRIES", "1000"))


class Bait:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        (path / "secret.txt").write_text(SECRET + "\n")
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.path.iterdir())}

    def untouched(self) -> bool:
        return self.snapshot() == self.before


@pytest.fixture
def bait(tmp_path) -> Bait:
    return Bait(tmp_path / "host-bait")


def _plant_links(emu, bait: Bait) -> None:
    """Links a client could make on the phone, to the host's places and in a loop."""
    links = {
        "etc_link": "/etc",
        "up": "../../../../../..",
        "host_abs": str(bait.path),
        "root_link": str(emu.root),
        "state_link": str(emu.config.state_dir),
        "tmp_link": "/tmp",
        "loop1": "loop2",
        "loop2": "loop1",
    }
    script = "cd /data/local/tmp && " + " && ".join(f"ln -s '{t}' {n}" for n, t in links.items())
    result = emu.phone.sh(script)
    assert result.exit_code == 0, result.err


@pytest.fixture
def emu(emulator_factory, bait):
    emu = emulator_factory(auth=False)
    _plant_links(emu, bait)
    return emu


@pytest.fixture(scope="module")
def module_bait(tmp_path_factory) -> Bait:
    return Bait(tmp_path_factory.mktemp("escape") / "host-bait")


@pytest.fixture(scope="module")
def read_emu(shared_emulator, module_bait):
    """One phone for the read attempts (they change nothing the next one depends on)."""
    _plant_links(shared_emulator, module_bait)
    return shared_emulator


def sh(emu, command: str):
    return emu.phone.sh(command, timeout=120)


def assert_no_host_data(text: str) -> None:
    assert SECRET not in text
    for line in HOST_ONLY_PASSWD:
        assert line not in text


@pytest.mark.parametrize(
    "command",
    [
        "cat {bait}/secret.txt",
        "cat /etc/passwd",
        "cd /; cat etc/passwd",
        "cd /data/local/tmp; cat ../../../../../../..{bait}/secret.txt",
        "D=/..; cat $D/..{bait}/secret.txt",
        "cat /data/local/tmp/etc_link/passwd",
        "cat /data/local/tmp/up/etc/passwd /data/local/tmp/up{bait}/secret.txt",
        "cat /data/local/tmp/host_abs/secret.txt",
        "cat /data/local/tmp/root_link/../host-bait/secret.txt",
        "cat /data/local/tmp/state_link/settings.json",
        "cat /proc/self/root{bait}/secret.txt /proc/1/root{bait}/secret.txt",
        "cd /proc/1/cwd && cat ..{bait}/secret.txt",
        "cat $(echo {bait}/secret.txt)",
        "sh -c 'cat {bait}/secret.txt'",
        "cp {bait}/secret.txt /data/local/tmp/copy; cat /data/local/tmp/copy",
        "grep -rs qwenchat-host-secret /data /system /vendor /sdcard/ /apex /root /lib /sys",
        "find / -name secret.txt 2>/dev/null",
        "cat < {bait}/secret.txt",
        ". {bait}/secret.txt",
        "{python} -c 'print(open(\"{bait}/secret.txt\").read())'",
        "ls -la {bait} /root /tmp /home",
    ],
)
def test_host_files_are_not_readable(read_emu, module_bait, command):
    from qwenchat.emulator.hostlend import lending

    result = sh(read_emu, command.format(bait=module_bait.path, python=lending().python))
    assert_no_host_data(result.out)
    assert_no_host_data(result.err)
    assert module_bait.untouched()


def test_the_phone_sees_its_own_files_where_links_point(emu):
    assert sh(emu, "cat /etc/passwd").out == PASSWD
    assert sh(emu, "cat /data/local/tmp/etc_link/passwd").out == PASSWD
    assert sh(emu, "cat /data/local/tmp/up/etc/passwd").out == PASSWD
    assert sh(emu, "ls /data/local/tmp/up").out == sh(emu, "ls /").out
    # cd -L (mksh's default) applies `..` to the path as written, like any POSIX shell
    assert sh(emu, "cd /data/local/tmp/up/..; pwd").out == "/data/local/tmp\n"
    for link in ("host_abs", "root_link", "state_link", "tmp_link"):
        result = sh(emu, f"ls /data/local/tmp/{link}/")
        assert result.exit_code != 0 and "No such file or directory" in result.err, link
    result = sh(emu, "cat /data/local/tmp/loop1")
    assert (
        result.exit_code == 1
        and "Symbolic link loop" in result.err + result.out
        or ("Too many levels of symbolic links" in result.err)
    )


def test_writes_never_reach_the_host(emu, bait, tmp_path):
    target = Path("/tmp") / f"qwenchat-escape-{os.getpid()}-{secrets.token_hex(4)}"
    commands = [
        f"echo pwned > {target}",
        f"echo pwned > /data/local/tmp/tmp_link/{target.name}",
        f"cd /data/local/tmp; echo pwned > ../../../../../../tmp/{target.name}",
        "echo pwned > /data/local/tmp/host_abs/secret.txt",
        "echo pwned >> /data/local/tmp/host_abs/new.txt",
        f"echo pwned > {bait.path}/secret.txt",
        f"cd /data/local/tmp; echo x > f; cp f /data/local/tmp/host_abs/copied; cp f {target}",
        "cd /data/local/tmp; echo x > f; mv f /data/local/tmp/up" + str(bait.path) + "/moved",
        f"mkdir -p /data/local/tmp/host_abs/dir {bait.path}/dir",
        f"touch /data/local/tmp/host_abs/touched {bait.path}/touched",
        "rm -rf /data/local/tmp/host_abs/secret.txt /data/local/tmp/host_abs/",
        f"rm -rf {bait.path} /data/local/tmp/up{bait.path}",
        "echo pwned >> /data/local/tmp/state_link/settings.json",
        "ln -s /tmp /data/local/tmp/l2; echo pwned > /data/local/tmp/l2/x",
        f"cd /data/local/tmp; ln -sf {bait.path}/secret.txt s; echo pwned > s; echo pwned >> s",
        f"truncate -s 0 {bait.path}/secret.txt /data/local/tmp/host_abs/secret.txt",
    ]
    settings = (emu.config.state_dir / "settings.json").read_bytes()
    for command in commands:
        sh(emu, command)
        assert bait.untouched(), command
        assert not target.exists(), command
    assert (emu.config.state_dir / "settings.json").read_bytes() == settings


def test_no_privilege_to_change_what_the_phone_sees(emu, bait):
    """Mounts, binds, namespaces, chroot, device nodes and hard links across the root."""
    attempts = {
        "mkdir -p /data/local/tmp/m && mount -t tmpfs x /data/local/tmp/m": "tmpfs",
        "mount --bind / /data/local/tmp/m": None,
        "busybox mount -o bind /proc/1/root /data/local/tmp/m": None,
        "unshare -m -r true": None,
        "nsenter -t 1 -m -u true": None,
        "chroot / true": None,
        "mknod /data/local/tmp/sda b 8 0": None,
        "ln /system/etc/passwd /data/local/tmp/hard": None,
        "ln /proc/1/exe /data/local/tmp/hard2": None,
        "busybox setpriv --reuid 0 true": None,
    }
    for command in attempts:
        result = sh(emu, command)
        assert result.exit_code != 0, (command, result.out, result.err)
    mounts = sh(emu, "cat /proc/mounts").out
    assert "/data/local/tmp/m" not in mounts
    assert bait.untouched()


def test_push_and_pull_stay_inside(emu, bait, tmp_path):
    src = tmp_path / "payload.bin"
    src.write_bytes(b"pushed by a client\n")
    device = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=10)
    device.connect(rsa_keys=None, auth_timeout_s=5)
    try:
        for target in (
            f"{bait.path}/pushed",
            f"/data/local/tmp/../../../..{bait.path}/pushed",
            "/data/local/tmp/host_abs/pushed",
            "/data/local/tmp/up" + str(bait.path) + "/pushed",
            "/data/local/tmp/state_link/adb_keys",
            "/proc/1/root" + str(bait.path) + "/pushed",
        ):
            try:
                device.push(str(src), target)
            except Exception:  # noqa: BLE001 - refused is what we want; the host is checked
                pass
            assert bait.untouched(), target
        for source in (
            f"{bait.path}/secret.txt",
            "/data/local/tmp/host_abs/secret.txt",
            f"/proc/self/root{bait.path}/secret.txt",
            "/data/local/tmp/state_link/adb_keys",
        ):
            back = tmp_path / "pulled"
            back.unlink(missing_ok=True)
            try:
                device.pull(source, str(back))
            except Exception:  # noqa: BLE001
                pass
            assert not back.exists() or SECRET not in back.read_text(errors="replace"), source
            assert device.stat(source) == (0, 0, 0), source
        names = [bytes(e.filename).decode() for e in device.list("/data/local/tmp/host_abs")]
        assert "secret.txt" not in names
    finally:
        device.close()


def test_links_made_on_the_phone_are_no_trap_for_host_tools(emu, bait):
    """The host's view of /data never follows a link the phone made (nosymfollow)."""
    view = emu.root / "fs" / "data" / "local" / "tmp"
    assert os.readlink(view / "host_abs") == str(bait.path)  # visible as a link...
    with pytest.raises(OSError) as info:
        (view / "host_abs" / "secret.txt").read_text()  # ...never followed
    assert info.value.errno == errno.ELOOP
    # tools told to follow links find nothing of the bait through the phone's links
    grep = subprocess.run(["grep", "-R", "-l", SECRET, str(emu.root / "fs")],
                          capture_output=True, text=True)  # fmt: skip
    assert grep.stdout == ""
    find = subprocess.run(["find", "-L", str(emu.root / "fs" / "data"), "-name", "secret.txt"],
                          capture_output=True, text=True)  # fmt: skip
    assert find.stdout == ""


def _loop(body: str, tries: int) -> str:
    return f"cd /data/local/tmp && i=0; while [ $i -lt {tries} ]; do {body}; i=$((i+1)); done"


def test_flipping_a_directory_into_a_host_symlink_while_streams_use_it(emu, bait, tmp_path):
    """The check-then-open race of path checking in userspace: one stream flips
    /data/local/tmp/d between a real directory and a symlink to the host bait while others
    cat d/FILE, write d/FILE and push to d/NAME. The kernel resolves every path inside the
    phone's root, so there is no window: the bait is never read nor written."""
    tries = RACE_TRIES
    phone = emu.phone
    flip = _loop(f"rm -rf d; mkdir d; echo phone > d/FILE; rm -rf d; ln -s {bait.path} d", tries)
    read = _loop("cat d/FILE d/secret.txt 2>/dev/null", tries)
    write = _loop("echo X > d/FILE 2>/dev/null; echo X >> d/secret.txt 2>/dev/null", tries)
    results: dict[str, object] = {}

    def run(name: str, command: str) -> None:
        results[name] = phone.sh(command, timeout=900)

    def push() -> None:
        src = tmp_path / "F"
        src.write_bytes(b"pushed\n")
        device = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=30)
        device.connect(rsa_keys=None, auth_timeout_s=5)
        done = 0
        try:
            for i in range(tries):
                try:
                    device.push(str(src), f"/data/local/tmp/d/NAME{i % 7}")
                    done += 1
                except Exception:  # noqa: BLE001 - d is a dangling link half of the time
                    pass
        finally:
            device.close()
        results["pushed"] = done

    threads = [threading.Thread(target=run, args=("flip", flip)),
               threading.Thread(target=run, args=("read", read)),
               threading.Thread(target=run, args=("write", write)),
               threading.Thread(target=push)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["flip"].exit_code == 0, results["flip"].err
    assert_no_host_data(results["read"].out)
    assert "phone" in results["read"].out or "X" in results["read"].out  # the race did run
    assert bait.untouched()
    assert results["pushed"] > 0  # some pushes landed, in the phone
