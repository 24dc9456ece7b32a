"""Escape attempts against the emulated phone's shell. The host's files must never be read
or written: absolute host paths, `..` chains, symlinks pushed over sync (made here with
os.symlink, as sync's SEND of a link would), variables, `cd` tricks and redirects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwenchat.emulator.config import EmulatorConfig
from qwenchat.emulator.phone import Phone, ShellSession

HOST_PASSWD = Path("/etc/passwd").read_text() if Path("/etc/passwd").exists() else "root:x:0:0"
MARK = "root:x:0:0"


@pytest.fixture
def phone(tmp_path) -> Phone:
    p = Phone(EmulatorConfig(root=tmp_path / "emu"))
    tmp = p.config.fs_root / "data/local/tmp"
    # what a client could push over sync: links are stored as given
    os.symlink("/etc", tmp / "etc_link")
    os.symlink("../../../../../..", tmp / "up")
    os.symlink(str(tmp_path), tmp / "host_abs")  # the host path of the emulator's own dir
    os.symlink(str(p.config.state_dir), tmp / "state_link")
    os.symlink("/tmp", tmp / "tmp_link")
    os.symlink("loop2", tmp / "loop1")
    os.symlink("loop1", tmp / "loop2")
    return p


def sh(phone: Phone, command: str) -> tuple[int, str, str]:
    out: list[bytes] = []
    err: list[bytes] = []
    s = ShellSession(phone, command, stdout=out.append, stderr=err.append)
    s.close_stdin()
    rc = s.run()
    return rc, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")


def assert_no_host_data(out: str) -> None:
    assert MARK not in out and "root:" not in out


@pytest.mark.parametrize(
    "command",
    [
        "cat /etc/passwd",
        "cd /; cat etc/passwd",
        "cd /data/local/tmp; cat ../../../../../../../etc/passwd",
        "D=/..; cat $D/../etc/passwd",
        'D="/../../.."; cd "$D"; cat ./etc/passwd',
        "cat /data/local/tmp/etc_link/passwd",
        "cat /data/local/tmp/up/etc/passwd",
        "cd /data/local/tmp/up; cd ../..; cat etc/passwd",
        "cat /data/local/tmp/host_abs/../../../etc/passwd",
        "cat /../../../../../../etc/pass*",
        "cat $(echo /etc/passwd)",
        "sh -c 'cat /etc/passwd'",
        "x=/etc; cat ${x}/passwd",
        "cp /etc/passwd /data/local/tmp/copy; cat /data/local/tmp/copy",
        "grep root /etc/passwd",
        "sha256sum /etc/passwd; head /etc/passwd; tail /etc/passwd",
        "find / -name passwd",
        "cat < /etc/passwd",
        "source /etc/passwd",
    ],
)
def test_host_files_are_not_readable(phone, command):
    rc, out, err = sh(phone, command)
    assert_no_host_data(out)
    assert_no_host_data(err)


def test_missing_file_message_is_the_phone_s(phone):
    assert sh(phone, "cat /etc/passwd") == (1, "", "cat: /etc/passwd: No such file or directory\n")


def test_sandbox_file_is_what_an_absolute_path_gets(phone):
    etc = phone.config.fs_root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("phone-passwd\n")
    for cmd in (
        "cat /etc/passwd",
        "cat /data/local/tmp/etc_link/passwd",
        "cat /data/local/tmp/up/etc/passwd",
    ):
        assert sh(phone, cmd)[1] == "phone-passwd\n"


def test_links_and_dotdot_stay_at_the_sandbox_root(phone):
    root_listing = sh(phone, "ls /")[1]
    assert sh(phone, "ls /data/local/tmp/up")[1] == root_listing
    # `..` is applied lexically before links are read (Sandbox.normalize, like `cd -L`)
    assert sh(phone, "cd /data/local/tmp/up/../../..; pwd")[1] == "/data\n"
    assert sh(phone, "cd /data/local/tmp/up/..; pwd")[1] == "/data/local/tmp\n"
    # a link to the emulator's own host dir resolves inside the sandbox, where it is missing
    rc, _, err = sh(phone, "cd /data/local/tmp/host_abs")
    assert rc == 2 and "No such file or directory" in err
    # a link to the host's /tmp is the sandbox's /tmp, which does not exist
    assert sh(phone, "ls /data/local/tmp/tmp_link/")[0] == 1
    # the emulator's own state dir (outside fs/) is unreachable by its host path
    rc, out, _ = sh(phone, "ls /data/local/tmp/state_link/")
    assert rc == 1 and "settings" not in out and "thermal" not in out
    rc, _, err = sh(phone, "cat /data/local/tmp/loop1")
    assert rc == 1 and "Too many levels of symbolic links" in err


def test_writes_never_reach_the_host(phone, tmp_path):
    target = Path("/tmp") / f"qwenchat-escape-{os.getpid()}"
    outside = tmp_path / "outside.txt"
    commands = [
        f"echo pwned > {target}",
        f"echo pwned > /data/local/tmp/tmp_link/{target.name}",
        f"cd /data/local/tmp; echo pwned > ../../../../../../tmp/{target.name}",
        "echo pwned > /data/local/tmp/host_abs/outside.txt",
        f"echo pwned > {outside}",
        f"cd /data/local/tmp; echo x > f; cp f /data/local/tmp/tmp_link/{target.name}",
        f"cd /data/local/tmp; echo x > f; mv f /data/local/tmp/up/tmp/{target.name}",
        f"mkdir -p /data/local/tmp/tmp_link/{target.name}",
        f"touch /data/local/tmp/tmp_link/{target.name}",
        "echo pwned >> /data/local/tmp/state_link/settings.json",
        "ln -s /tmp /data/local/tmp/l2; echo pwned > /data/local/tmp/l2/x; ls /data/local/tmp/l2",
    ]
    settings_before = sorted(p.name for p in phone.config.state_dir.iterdir())
    for cmd in commands:
        sh(phone, cmd)
        assert not target.exists(), cmd
        assert not outside.exists(), cmd
    assert sorted(p.name for p in phone.config.state_dir.iterdir()) == settings_before
    assert not Path("/tmp/x").exists() or Path("/tmp/x").read_text() != "pwned\n"


def test_read_only_and_forbidden_places(phone):
    rc, _, err = sh(phone, "echo x > /system/bin/sh")
    assert rc == 1 and "Read-only file system" in err
    rc, _, err = sh(phone, "mkdir /newdir")
    assert rc == 1 and "Permission denied" in err
    rc, _, err = sh(phone, "rm -rf /")
    assert sh(phone, "ls /data/local")[1] == "tmp\n"


def test_rm_through_a_link_removes_only_the_link(phone, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("host data")
    os.symlink(str(tmp_path), phone.config.fs_root / "data/local/tmp/hostdir")
    sh(
        phone,
        "rm -rf /data/local/tmp/hostdir/keep.txt /data/local/tmp/up/../../../..; rm -r /data/local/tmp/hostdir",
    )
    assert keep.read_text() == "host data"


def test_glob_through_links_stays_inside(phone):
    rc, out, _ = sh(phone, "echo /data/local/tmp/up/*")
    assert out.split() == [
        f"/data/local/tmp/up/{n}" for n in sorted(os.listdir(phone.config.fs_root))
    ]


def test_launching_host_programs_is_impossible(phone):
    for cmd in ("/bin/ls /", "/usr/bin/env", "python3 -c 1", "env /bin/true", "exec /usr/bin/id"):
        rc, out, err = sh(phone, cmd)
        assert rc == 127, (cmd, rc, err)
    # /bin/sh is the phone's own shell (as on Android), never the host's
    assert sh(phone, "exec /bin/sh -c id")[1].startswith("uid=2000(shell)")
    # host programs copied over sync do not run either (no marker: not executable here)
    exe = phone.config.fs_root / "data/local/tmp/ls"
    exe.write_bytes(Path("/bin/ls").read_bytes()[:4096])
    exe.chmod(0o755)
    assert sh(phone, "/data/local/tmp/ls /")[0] == 126
