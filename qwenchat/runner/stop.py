"""Stopping exactly our Genie process on the phone, and making sure it is gone.

One way for chat, bench and doctor: ``kill -INT`` (Genie's own handler prints [ABORT] where
it has one), check with ``pidof`` that the pid is gone, else ``kill -9`` and check again.
Commands go through the device's side channel: another thread may be reading the query's
stream on the main connection.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from qwenchat.errors import DeviceCommandError

if TYPE_CHECKING:
    from qwenchat.device.base import Device

GENIE_PROCESS = "genie-t2t-run"
POLL_S = 0.05


def is_alive(device: Device, pid: int, name: str = GENIE_PROCESS) -> bool:
    """Whether ``pid`` is still a ``name`` process (a recycled pid of another name is not)."""
    with device.side_channel() as dev:
        result = dev.shell(f"pidof {name}", timeout=10)
    return str(int(pid)) in result.text.split()


def stop_process(
    device: Device, pid: int, *, name: str = GENIE_PROCESS, grace_s: float = 3.0
) -> None:
    """INT, wait up to ``grace_s`` for it to go, then KILL; raises if it survives that."""
    for signal_name in ("INT", "KILL"):
        try:
            with device.side_channel() as dev:
                dev.shell(f"kill -{signal_name} {int(pid)}", timeout=10)
        except DeviceCommandError:
            pass  # already gone, or kill refused: the pidof check decides
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not is_alive(device, pid, name):
                return
            time.sleep(POLL_S)
    raise DeviceCommandError(
        f"{name} (pid {pid}) survived kill -9 on the phone",
        hint=f"Reboot the phone or kill it by hand: adb shell kill -9 {int(pid)}",
    )


def pids_running_with(device: Device, needle: str) -> list[int]:
    """Pids whose command line holds ``needle`` (a query's unique prompt-file path): how a
    query's Genie is found when its pid is not known (an interrupt before its pid line, or a
    shell that forks instead of exec)."""
    with device.side_channel() as dev:
        result = dev.shell("ps -A -o PID,ARGS", timeout=10)
    pids = []
    for line in result.text.splitlines():
        first, _, rest = line.strip().partition(" ")
        if first.isdigit() and needle in rest:
            pids.append(int(first))
    return pids
