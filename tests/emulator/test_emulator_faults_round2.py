"""Issue 31, item 9: the emulated phone after a SIGKILL.

Failure modes, each with its test: a restart refused because ``e2fsck -p`` exits 1 (errors
corrected: a repaired filesystem, not a failure); the emulated adbd's hidden temp file of a
push in progress (``.NAME.adbd-XXXXXXXX``) staying on /data forever after the emulator was
killed mid-push, eating the phone's space (a real adbd writes the file itself and leaves no
such thing).

The unclean filesystem is made with e2fsprogs' own debugfs (a wrong free-block count and the
"not cleanly unmounted" state, what a killed emulator leaves); the leftover temp file is
written where and as the emulated adbd names it. Oracles: the phone starts, its files are
there, ``ls -a`` on the phone, and e2fsck's exit code asked directly.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def sh(emu, command: str):
    return emu.phone.sh(command, timeout=60)


def _debugfs(image, request: str) -> None:
    result = subprocess.run(["debugfs", "-w", "-R", request, str(image)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs' debugfs")
def test_a_filesystem_e2fsck_repairs_is_a_phone_that_starts(emulator_factory, tmp_path):
    root = tmp_path / "phone"
    emu = emulator_factory(auth=False, root=root, free_mb=32)
    assert sh(emu, "echo kept > /data/local/tmp/kept").exit_code == 0
    emu.stop()
    image = root / "state" / "userdata.img"
    _debugfs(image, "ssv free_blocks_count 1")
    _debugfs(image, "ssv state 0")  # not cleanly unmounted, as a killed emulator leaves it
    copy = tmp_path / "copy.img"
    shutil.copyfile(image, copy)
    # e2fsck itself says the repair is "errors corrected" (exit 1), on a copy of the image.
    assert subprocess.run(["e2fsck", "-p", str(copy)], capture_output=True).returncode == 1
    again = emulator_factory(auth=False, root=root, free_mb=32)
    assert sh(again, "cat /data/local/tmp/kept").out == "kept\n"


def test_a_push_temp_file_a_killed_adbd_left_is_removed_at_the_next_start(
    emulator_factory, tmp_path
):
    root = tmp_path / "phone"
    emu = emulator_factory(auth=False, root=root, free_mb=32)
    work = "/data/local/tmp/qwenchat/bundle"
    left = f"{work}/.weights.bin.partial.adbd-0a1b2c3d"  # as phoneinit.create_temp names it
    assert sh(emu, f"mkdir -p {work} && head -c 4000000 /dev/zero > {left} && "
                   f"echo mine > {work}/.notes.adbd-keep").exit_code == 0  # fmt: skip
    emu.stop()
    again = emulator_factory(auth=False, root=root, free_mb=32)
    listing = sh(again, f"ls -a {work}").out.split()
    assert ".weights.bin.partial.adbd-0a1b2c3d" not in listing
    assert ".notes.adbd-keep" in listing  # not adbd's name pattern: the phone's own file
