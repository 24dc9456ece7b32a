"""Confining every path of the emulated phone to its sandbox folder.

Paths are resolved like a chroot: each component is walked on the host, ``..`` never climbs
above the sandbox's "/", and symlinks (which a client can push over sync) are read and
re-interpreted inside the sandbox, never followed by the host. Rewriting strings could not
give this guarantee; resolving component by component does.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

MAX_SYMLINK_HOPS = 40


class SandboxError(OSError):
    pass


class Sandbox:
    def __init__(self, fs_root: Path) -> None:
        self.fs_root = Path(fs_root).resolve()

    def normalize(self, path: str, cwd: str = "/") -> str:
        """The absolute emulated path, lexically (no symlinks): '..' stops at '/'."""
        joined = path if path.startswith("/") else posixpath.join(cwd or "/", path)
        parts: list[str] = []
        for part in joined.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def to_host(self, path: str, cwd: str = "/", *, follow_last: bool = True) -> Path:
        """The host path for an emulated path, with every symlink resolved inside the sandbox.

        The result may not exist (a file about to be created); its parent chain is real.
        """
        pending = self.normalize(path, cwd).strip("/").split("/")
        pending = [p for p in pending if p]
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            if part == ".":
                continue
            host = self.fs_root.joinpath(*resolved, part)
            is_last = not pending
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                resolved.append(part)
                continue
            except NotADirectoryError as exc:
                raise SandboxError(20, "Not a directory", "/" + "/".join(resolved + [part])) from exc
            if stat.S_ISLNK(st.st_mode) and (follow_last or not is_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise SandboxError(40, "Too many levels of symbolic links", path)
                target = os.readlink(host)
                target_parts = [p for p in target.split("/") if p]
                if target.startswith("/"):
                    resolved = []
                pending = target_parts + pending
                continue
            resolved.append(part)
        return self.fs_root.joinpath(*resolved)

    def to_emulated(self, host: Path) -> str:
        """The emulated path of a host path inside the sandbox."""
        rel = Path(host).resolve().relative_to(self.fs_root)
        return "/" + rel.as_posix() if str(rel) != "." else "/"

    def free_bytes(self, capacity_bytes: int) -> int:
        """Free space under a fixed capacity: capacity minus what the sandbox holds."""
        used = 0
        for dirpath, _dirnames, filenames in os.walk(self.fs_root):
            for name in filenames:
                try:
                    used += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                except OSError:
                    pass
        return max(0, capacity_bytes - used)
