"""The phone's read-only trees, /system and /vendor, written on the host at every start.

They live in ``DIR/fs/system`` and ``DIR/fs/vendor`` (the emulator's, never the phone's
storage) and are bound read-only into the sandbox. /system/bin is laid out as on Android:
``sh`` (mksh), ``toybox`` and one link per toybox command; the commands Android's toybox has
and Debian's build lacks (``tr``, ``dd``, ``expr``, ...) link to busybox; the hash commands
(``sha256sum``...) to ``qwenchat-hashsum`` (toybox's output at the speed of Android's
BoringSSL toybox, ``emulator.hashsum``); ``getprop``,
``setprop``, ``settings``, ``cmd`` and ``dumpsys`` are small shell programs of the emulator
that read the phone's state (``/system/build.prop``, ``/sys``). ``sh``, ``toybox`` and
``busybox`` are empty files here: the host's binaries are bound over them (``hostlend``).

A ``fail-command`` fault swaps one command's link for ``qwenchat-fault`` (see ``faults``);
since the tree is bound, the running phone sees the swap at once.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from qwenchat.emulator import programs
from qwenchat.emulator.hostlend import lending, tool_path

# The command links of Android 15's toybox (AOSP external/toybox), plus awk, which Android
# ships on its own (one-true-awk) and busybox provides here.
ANDROID_TOYBOX = """
acpi base64 basename blkdiscard blkid blockdev brctl cal cat chattr chgrp chmod chown chroot
chrt cksum clear cmp comm cp cpio cut date dd devmem df diff dirname dmesg dos2unix du echo
egrep env expand expr fallocate false fgrep file find flock fmt free fsync getconf getopt
grep groups gunzip gzip head help hostname hwclock i2cdetect i2cdump i2cget i2cset iconv id
ifconfig inotifyd insmod install ionice iorenice iotop kill killall ln logname losetup ls
lsattr lsmod lspci lsusb makedevs md5sum microcom mkdir mkfifo mknod mkswap mktemp modinfo
modprobe more mount mountpoint mv nbd-client nc netcat netstat nice nl nohup nproc nsenter od
partprobe paste patch pgrep pidof ping ping6 pivot_root pkill pmap printenv printf prlimit ps
pwd pwdx readelf readlink realpath renice rev rfkill rm rmdir rmmod rtcwake sed seq setfattr
setsid sha1sum sha224sum sha256sum sha384sum sha512sum sleep sort split stat strings stty
swapoff swapon sync sysctl tac tail tar taskset tee test time timeout top touch tr traceroute
traceroute6 true truncate tty tunctl uclampset ulimit umount uname uniq unix2dos unlink unshare
uptime usleep uudecode uuencode uuidgen vconfig vi vmstat watch wc which whoami xargs xxd yes
zcat awk
""".split()

HASH_COMMANDS = frozenset("md5sum sha1sum sha224sum sha256sum sha384sum sha512sum".split())
PASSWD = "root:x:0:0:root:/:/system/bin/sh\nsystem:x:1000:1000::/:/system/bin/sh\n" \
    "shell:x:2000:2000::/:/system/bin/sh\nnobody:x:9999:9999::/:/system/bin/sh\n"  # fmt: skip
GROUP = "root:x:0:\nsystem:x:1000:\nshell:x:2000:\ninet:x:3003:\nnobody:x:9999:\n"
FAULT_PROGRAM = "qwenchat-fault"
NOT_FAULTABLE = frozenset(
    {"sh", "toybox", "busybox", programs.GENIE_LAUNCHER, programs.HASHSUM, FAULT_PROGRAM}
)
# Commands the phone's mksh runs as builtins (`whence -v NAME`): its /system/bin link is never
# used by a shell command line, so a fault there would silently do nothing.
SHELL_BUILTINS = frozenset("[ echo false kill login pwd realpath test true ulimit".split())


@functools.lru_cache(maxsize=4)
def _applets(tool: str) -> frozenset[str]:
    args = ["--list"] if tool == "busybox" else []
    out = subprocess.run([str(tool_path(tool)), *args], capture_output=True, text=True).stdout
    return frozenset(out.split())


def command_links() -> dict[str, str]:
    """/system/bin name -> what it links to (``toybox``, ``busybox``, or the emulator's
    ``qwenchat-hashsum`` for the hash commands: toybox's output at Android's speed)."""
    toybox, busybox = _applets("toybox"), _applets("busybox")
    links = {}
    for name in ANDROID_TOYBOX:
        if name in HASH_COMMANDS:
            links[name] = programs.HASHSUM
        elif name in toybox:
            links[name] = "toybox"
        elif name in busybox:
            links[name] = "busybox"
    return links


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def build(fs_root: Path, build_prop: str, fail_commands: frozenset[str] = frozenset()) -> None:
    """(Re)write /system and /vendor under ``fs_root`` (the phone must not be running)."""
    system = fs_root / "system"
    shutil.rmtree(system, ignore_errors=True)
    shutil.rmtree(fs_root / "vendor", ignore_errors=True)
    bin_dir = system / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("sh", "toybox", "busybox"):
        (bin_dir / name).touch(0o755)  # bind targets of the host's binaries
    for name, target in command_links().items():
        os.symlink(target, bin_dir / name)
    for name, text in programs.programs(lending()).items():
        _write(bin_dir / name, text, 0o755)
    _write(system / "etc" / "passwd", PASSWD)
    _write(system / "etc" / "group", GROUP)
    _write(system / "etc" / "hosts", "127.0.0.1 localhost\n::1 ip6-localhost\n")
    _write(system / "etc" / "mkshrc", programs.MKSHRC)
    _write(system / "etc" / "fstab", "")  # toybox mount reads it before it tries mount(2)
    _write(system / "build.prop", build_prop)
    (fs_root / "vendor" / "lib64").mkdir(parents=True)
    _write(fs_root / "vendor" / "build.prop", "# SIMULATED phone: see /system/build.prop\n")
    for name in fail_commands:
        set_failing(fs_root, name, True)


def faultable(fs_root: Path, name: str) -> bool:
    path = fs_root / "system" / "bin" / name
    return name not in NOT_FAULTABLE and "/" not in name and (path.is_symlink() or path.exists())


def is_builtin(name: str) -> bool:
    return name in SHELL_BUILTINS


def set_failing(fs_root: Path, name: str, failing: bool) -> None:
    """Point /system/bin/NAME at the failing wrapper, or back at its real program."""
    bin_dir = fs_root / "system" / "bin"
    if failing:
        target = FAULT_PROGRAM
    else:
        target = command_links().get(name)
        if target is None:  # an emulator program: rewrite it
            text = programs.programs(lending()).get(name)
            if text is not None and (bin_dir / name).is_symlink():
                (bin_dir / name).unlink()
                _write(bin_dir / name, text, 0o755)
            return
    tmp = bin_dir / f".{name}.swap"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, bin_dir / name)  # atomic: a running shell sees the old or the new one
