"""Each emulated phone's memory and process limits, as a phone's own limits bound its shell
user: a runaway command on the phone (a fork loop, a huge allocation, a leaking simulated
Genie) is stopped there, never takes the host down.

A real phone's shell user lives inside the phone's RAM (the low-memory killer ends the
biggest process) and its kernel's process table. The emulator gives each phone a control
group of its own, made before the sandbox starts and entered by bwrap before it runs, so
every process of the phone is in it: ``memory`` (v1 ``memory.limit_in_bytes``, v2
``memory.max``: past it the kernel's OOM killer ends the biggest process of that phone only)
and ``pids`` (``pids.max``: a fork past it fails with EAGAIN, "Resource temporarily
unavailable", as on a phone whose process table is full). The figures are the emulator's
(``QWENCHAT_PHONE_MEMORY_MB``, ``QWENCHAT_PHONE_PIDS_MAX``), sized for the simulated
Genie, not a copy of a phone's RAM.

Where no control group can be made (not root, no writable cgroup filesystem) the phone runs
without them, and ``PhoneLimits.not_enforced`` says why (as /data's size does in
``storage.py``).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger("qwenchat.emulator")

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMORY_MB = 3072  # the simulated Genie's processes, the phone's shell and page cache
PIDS_MAX = 1024  # processes and threads of one phone


def _own_v1_group(controller: str) -> Path | None:
    """This process's group under a v1 controller (limits nest inside it)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return CGROUP_ROOT / controller / path.lstrip("/")
    except (OSError, ValueError):
        return None
    return None


class PhoneLimits:
    """The control group(s) of one phone; ``enter`` runs in bwrap's process before exec."""

    def __init__(self, memory_mb: int | None = None, pids_max: int | None = None) -> None:
        self.memory_mb = memory_mb or int(os.environ.get("QWENCHAT_PHONE_MEMORY_MB", MEMORY_MB))
        self.pids_max = pids_max or int(os.environ.get("QWENCHAT_PHONE_PIDS_MAX", PIDS_MAX))
        self.groups: list[Path] = []
        self.not_enforced: str | None = None
        self._procs: list[str] = []

    def create(self) -> None:
        name = f"qwenchat-phone-{uuid.uuid4().hex[:12]}"
        settings = {
            "memory": {"memory.limit_in_bytes": str(self.memory_mb * 1024 * 1024)},
            "pids": {"pids.max": str(self.pids_max)},
        }
        try:
            for controller, values in settings.items():
                parent = _own_v1_group(controller)
                if parent is None or not parent.is_dir():
                    raise OSError(f"no cgroup v1 {controller} controller mounted")
                group = parent / name
                group.mkdir()
                self.groups.append(group)
                for key, value in values.items():
                    (group / key).write_text(value)
        except OSError as exc:
            self.remove()
            self.not_enforced = f"no per-phone control group ({exc})"
            log.info("the phone runs without memory/process limits: %s", self.not_enforced)
            return
        self._procs = [str(group / "cgroup.procs") for group in self.groups]

    @property
    def enforced(self) -> bool:
        return bool(self._procs)

    def enter(self) -> None:
        """In the child, before exec: this process (then all it starts) joins the groups.
        Only os calls: it runs between fork and exec."""
        pid = str(os.getpid()).encode()
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def remove(self) -> None:
        """After the phone stopped (its processes are gone, so the groups are empty)."""
        import time

        for group in reversed(self.groups):
            deadline = time.monotonic() + 2.0  # the kernel may still be reaping the phone
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        log.info("control group %s not removed: %s", group, exc)
                        break
                    time.sleep(0.02)
        self.groups = []
        self._procs = []
