"""The on-disk cache of built tokenizers: one folder per content key, built once.

Several processes may ask at the same moment (pytest-xdist workers, two CLI calls): one
builds under a lock while the others wait, then find its finished folder. A folder is built
beside its final place and renamed in one step, so a reader sees either no folder or a
complete one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files get pushed and shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(final: Path, marker: str, build: Callable[[Path], object]) -> Path:
    """``final / marker``, calling ``build(staging_dir)`` first unless a complete folder is
    already there. ``build`` writes every file of the folder into ``staging_dir``."""
    target = final / marker
    if target.is_file():
        return target
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{final.name}.lock"):
        if target.is_file():
            return target
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}-build-"))
        try:
            build(staging)
            os.chmod(staging, 0o755)
            if final.exists():  # left without its marker file (emptied by hand)
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
