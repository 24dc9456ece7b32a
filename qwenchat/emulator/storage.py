"""The phone's /data: a size-limited filesystem that survives restarts.

``--free-mb`` is the capacity of /data (what ``df`` shows free on an empty phone). It is
enforced by the kernel where the write happens: /data is an ext4 image
(``DIR/state/userdata.img``, sparse) loop-mounted by the emulator, so a shell's ``>`` and a
sync push alike get ENOSPC, "No space left on device", from the filesystem itself. The
image persists, so the phone's files survive a restart with the same ``--root``; a changed
``--free-mb`` resizes it (refused when the files no longer fit).

Why an image: the other kernel limits were weighed and measured on this machine.
A tmpfs with ``size=`` can be mounted inside the sandbox's user namespace without root, but
lives in RAM and is gone at every restart; quotas need a host filesystem mounted with
project quotas; FUSE (fuse2fs) would put every byte of a push through a userspace daemon.
The image costs ~0.1 s per start (mkfs.ext4 ~30 ms on first use, mount ~40 ms) and writes
at page-cache speed, but loop-mounting needs real root (CAP_SYS_ADMIN in the host's user
namespace and /dev/loop-control). Without those (a developer running as themselves, a
container without loop devices) /data is a plain folder and ``--free-mb`` is NOT enforced:
``Storage.enforced`` is False and ``qwenchat emulator start`` says so, with the reason.

Two mounts of the one filesystem: the phone's own (``state/userdata.mnt``, 0700, what the
sandbox binds as /data) and the host's view (``DIR/fs/data``) mounted ``nosymfollow``: host
tools walking the emulator's folder see the phone's symlinks as links (lstat, readlink)
but the kernel never follows one, so a link the phone made to ``/etc`` leads nowhere on the
host. Inside the phone links work as usual.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator import PhoneStartError

log = logging.getLogger("qwenchat.emulator")

MIB = 1024 * 1024
BLOCK = 4096
INODES = 32768
SYSTEM_UID = 1000  # owner of /data and /data/local, as on Android (the shell can't write there)
MNT_DETACH = 2
# noinit_itable: the image is a fresh sparse file, its inode tables already read as zeros;
# zeroing them again would write 8 MiB into every image for nothing.
PHONE_MOUNT = "loop,nosuid,nodev,noatime,noinit_itable"
# mount(2) flags for the host's view: a bind, then its flags (MS_NOSYMFOLLOW: Linux 5.10)
MS_BIND, MS_REMOUNT, MS_REC = 4096, 32, 16384
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOSYMFOLLOW = 2, 4, 8, 256
HOST_VIEW_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW


class StorageError(PhoneStartError):
    pass


@dataclass
class DataLayout:
    """What /data holds on a fresh phone (owner is a host uid: 0 shows as `shell`)."""

    dirs: tuple[tuple[str, int, int], ...] = (
        ("local", 0o751, SYSTEM_UID),
        ("local/tmp", 0o771, 0),
        ("media", 0o770, 0),
        ("media/0", 0o770, 0),
    )


def _run(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise StorageError(f"{args[0]} failed: {detail[-1] if detail else result.returncode}")


# The emulated adbd's own temp file for a push in progress (phoneinit.create_temp): renamed
# into place when complete, removed when the push fails. Only a killed emulator leaves one.
ADBD_TEMP = re.compile(r"^\..+\.adbd-[0-9a-f]{8}$")


def sweep_adbd_temps(data: Path) -> list[str]:
    """Remove what a killed emulated adbd left (a real adbd writes the file itself, so a real
    phone has no such hidden leftovers: they would only eat the phone's space). Runs before
    the sandbox starts: nothing on the phone can move a folder meanwhile, and no link is
    followed (``os.walk`` does not, ``unlink`` removes a link itself)."""
    removed = []
    for folder, _dirs, files in os.walk(data):
        for name in files:
            if ADBD_TEMP.match(name):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(path)
    if removed:
        log.info("removed %d temp file(s) of pushes a killed adbd left", len(removed))
    return removed


def _mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def _mount(source: Path | None, target: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    src = os.fsencode(os.path.realpath(source)) if source is not None else None
    if libc.mount(src, os.fsencode(os.path.realpath(target)), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise StorageError(f"cannot mount {target}: {os.strerror(err)}")


def _umount(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    while _mounted(path):
        if libc.umount2(os.fsencode(os.path.realpath(path)), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                return
            raise StorageError(f"cannot unmount {path}: {os.strerror(err)}")


def loop_unavailable_reason() -> str | None:
    """Why /data cannot be a loop-mounted image here, or None if it can."""
    if os.geteuid() != 0:
        return "loop-mounting the /data image needs root"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control is missing)"
    for tool in ("mkfs.ext4", "resize2fs", "e2fsck", "mount"):
        if shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin") is None:
            return f"{tool} is not installed (apt-get install e2fsprogs mount)"
    return None


class Storage:
    """/data of one phone: ``prepare()`` before the sandbox starts, ``release()`` after."""

    def __init__(self, root: Path, free_mb: int) -> None:
        self.root = Path(root)
        self.free_mb = free_mb
        self.state = self.root / "state"
        self.image = self.state / "userdata.img"
        self.sidecar = self.state / "userdata.json"
        self.phone_mount = self.state / "userdata.mnt"
        self.host_view = self.root / "fs" / "data"
        self.not_enforced = loop_unavailable_reason()

    @property
    def enforced(self) -> bool:
        return self.not_enforced is None

    @property
    def phone_source(self) -> Path:
        """What the sandbox binds as /data."""
        return self.phone_mount if self.enforced else self.host_view

    # --- lifecycle ----------------------------------------------------------------------
    def prepare(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.release()  # a previous run killed without cleaning up
        if not self.enforced:
            self.host_view.mkdir(parents=True, exist_ok=True)
            self._skeleton(self.host_view, chown=False)
            sweep_adbd_temps(self.host_view)
            return
        self.phone_mount.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.phone_mount, 0o700)
        self.host_view.mkdir(parents=True, exist_ok=True)
        if not self.image.exists():
            self._create()
        else:
            # A killed emulator left it unclean. e2fsck's exit code is a bit mask: 1 "errors
            # corrected", 2 "corrected, reboot" (meaningless for an unmounted image) are both
            # a repaired filesystem; 4 and up are errors left uncorrected.
            _run("e2fsck", "-p", str(self.image), ok=(0, 1, 2))
            self._mount()
            if not self._close_enough():
                self._resize()
        self._skeleton(self.phone_mount, chown=True)
        self._adopt_old_layout()
        sweep_adbd_temps(self.phone_mount)
        _mount(self.phone_mount, self.host_view, MS_BIND)
        _mount(None, self.host_view, MS_REMOUNT | MS_BIND | HOST_VIEW_FLAGS)

    def _adopt_old_layout(self) -> None:
        """A root made by the emulator before /data was an image kept the phone's files in
        plain folders (fs/data, fs/sdcard): move them into the image once, links as links."""
        fs = self.root / "fs"
        for old, new in (
            (self.host_view, self.phone_mount),
            (fs / "sdcard", self.phone_mount / "media/0"),
        ):
            if old.is_symlink() or not old.is_dir() or _mounted(old) or not any(old.iterdir()):
                continue
            log.info("moving the phone's files from %s into its /data image", old)
            shutil.copytree(old, new, symlinks=True, dirs_exist_ok=True)
            for child in old.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        for stale in ("sdcard", "storage", "proc", "sys", "dev"):  # the old skeleton's folders
            path = fs / stale
            if path.is_dir() and not path.is_symlink() and not _mounted(path):
                shutil.rmtree(path, ignore_errors=True)

    def release(self) -> None:
        if self.enforced:
            _umount(self.host_view)
            _umount(self.phone_mount)

    # --- the image ----------------------------------------------------------------------
    def _target_blocks(self) -> int:
        return self.free_mb * MIB // BLOCK

    def _capacity_blocks(self) -> int:
        """Data blocks of the mounted filesystem: what an empty /data has free."""
        st = os.statvfs(self.phone_mount)
        return st.f_blocks * st.f_frsize // BLOCK

    def _mount(self) -> None:
        _run("mount", "-o", PHONE_MOUNT, str(self.image), str(self.phone_mount))

    def _mkfs(self, size: int) -> None:
        self.image.unlink(missing_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(size)
        # No journal: it would need 4 MiB even for a 1 MiB /data, and the emulator being
        # killed loses nothing (the page cache still reaches the image); a host crash is
        # repaired by the e2fsck at the next start. No resize inode: /data is only ever
        # resized offline, and without it the metadata is small and easy to predict.
        _run("mkfs.ext4", "-q", "-F", "-b", str(BLOCK), "-m", "0", "-N", str(INODES),
             "-O", "^has_journal,^resize_inode", "-L", "userdata", "-E",
             f"lazy_itable_init=1,nodiscard,root_owner={SYSTEM_UID}:{SYSTEM_UID}",
             str(self.image))  # fmt: skip

    def _overhead_blocks(self) -> int:
        """Metadata on top of the capacity: the inode tables, then ~2.2 blocks per 128 MiB
        group (bitmaps, descriptors); a slight underestimate, so /data is never larger."""
        groups = -(-self._target_blocks() // 32768)
        return INODES * 256 // BLOCK + 4 + 2 * groups

    def _close_enough(self) -> bool:
        short = self._target_blocks() - self._capacity_blocks()
        return 0 <= short <= max(64, self._target_blocks() // 1000)

    def _create(self) -> None:
        size = (self._target_blocks() + self._overhead_blocks()) * BLOCK
        for _attempt in range(3):
            self._mkfs(size)
            self._mount()
            if self._close_enough():
                break
            missing = self._target_blocks() - self._capacity_blocks()
            _umount(self.phone_mount)
            size += missing * BLOCK
        self._write_sidecar()

    def _resize(self) -> None:
        for _attempt in range(3):
            if self._close_enough():
                break
            missing = self._target_blocks() - self._capacity_blocks()
            _umount(self.phone_mount)
            size = self.image.stat().st_size + missing * BLOCK
            _run("e2fsck", "-f", "-p", str(self.image))
            try:
                _run("resize2fs", str(self.image), f"{size // 1024}K")
            except StorageError as exc:
                self._mount()
                raise StorageError(
                    f"cannot make /data {self.free_mb} MiB: the phone's files do not fit ({exc})"
                ) from None
            with open(self.image, "r+b") as f:
                f.truncate(size)
            self._mount()
        self._write_sidecar()

    def _write_sidecar(self) -> None:
        self.sidecar.write_text(json.dumps({"free_mb": self.free_mb, "block": BLOCK}))

    def _skeleton(self, base: Path, *, chown: bool) -> None:
        os.chmod(base, 0o771)
        for rel, mode, uid in DataLayout().dirs:
            path = base / rel
            path.mkdir(exist_ok=True)
            os.chmod(path, mode)
            if chown:
                os.chown(path, uid, uid)
