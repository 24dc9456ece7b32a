"""Fault switches of an emulated phone, by name: ``qwenchat emulator fault`` and the tests.

A switch is stored in ``state/settings.json`` (under a lock, so two writers never lose each
other's change) and applies to the running phone at once: the emulator re-reads the file
when it changes (``config.LiveConfig``), the simulated genie-t2t-run asks for the switches
when it starts, and ``fail-command`` swaps the command's link in /system/bin right here.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator import EmulatorError, rootfs
from qwenchat.emulator.config import EmulatorConfig, Faults


class FaultError(EmulatorError):
    """Bad fault name or value; the message is one line for the user."""

    usage = True


@dataclass(frozen=True)
class Switch:
    name: str
    value: str  # "N" (a count), "CMD" (a command name) or "" (an on/off switch)
    help: str


SWITCHES = {
    s.name: s
    for s in (
        Switch("drop-after-bytes", "N", "drop every connection after N bytes received"),
        Switch("corrupt-bytes", "N", "flip N bytes of the next file pushed to the phone"),
        Switch("fail-command", "CMD", "make /system/bin/CMD fail (exit 1) without running"),
        Switch("genie-crash-after", "N", "the simulated genie-t2t-run crashes after N tokens"),
        Switch("genie-hang-before-first-token", "", "the simulated genie hangs before its reply"),
        Switch("genie-fail-load", "", "the simulated genie fails to load the model"),
    )
}
_COMMAND = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")


@contextmanager
def _locked(root: Path) -> Iterator[EmulatorConfig]:
    settings = Path(root) / "state" / "settings.json"
    if not settings.exists():
        raise FaultError(f"no emulated phone in {root} (start one with `qwenchat emulator start`)")
    with open(settings.with_name("settings.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = EmulatorConfig.load(root)
        yield config
        config.save()


def _count(name: str, value: str | None) -> int:
    try:
        n = int(value or "")
    except ValueError:
        raise FaultError(f"{name} needs a whole number, not {value!r}") from None
    if n < 0:
        raise FaultError(f"{name} needs a number >= 0, not {n}")
    return n


def set_fault(root: Path, name: str, value: str | None = None) -> str:
    """Switch ``name`` on; returns what is now set, as one line."""
    switch = SWITCHES.get(name)
    if switch is None:
        raise FaultError(f"unknown fault {name!r} (one of: {', '.join(SWITCHES)})")
    if switch.value == "" and value not in (None, ""):
        raise FaultError(f"{name} takes no value")
    if switch.value and value in (None, ""):
        raise FaultError(f"{name} needs a value: {name} {switch.value}")
    with _locked(root) as config:
        faults = config.faults
        if name == "drop-after-bytes":
            config.drop_after_bytes = _count(name, value)
        elif name == "corrupt-bytes":
            faults.corrupt_bytes = _count(name, value)
        elif name == "genie-crash-after":
            faults.crash_after_tokens = _count(name, value)
        elif name == "genie-hang-before-first-token":
            faults.hang_before_first_token = True
        elif name == "genie-fail-load":
            faults.fail_load = True
        else:
            command = str(value)
            if rootfs.is_builtin(command):
                raise FaultError(
                    f"{command} is a builtin of the phone's shell (mksh): no /system/bin "
                    "program to replace"
                )
            if not _COMMAND.match(command) or not rootfs.faultable(config.fs_root, command):
                raise FaultError(f"no command {command!r} in the phone's /system/bin to fail")
            if command not in faults.fail_commands:
                faults.fail_commands.append(command)
            rootfs.set_failing(config.fs_root, command, True)
    return describe(name, value)


def clear_faults(root: Path, name: str | None = None) -> list[str]:
    """Switch one fault (or all) off; returns the names switched off."""
    if name is not None and name not in SWITCHES:
        raise FaultError(f"unknown fault {name!r} (one of: {', '.join(SWITCHES)})")
    with _locked(root) as config:
        before = active(config)
        names = [name] if name else list(SWITCHES)
        if "drop-after-bytes" in names:
            config.drop_after_bytes = None
        fresh = Faults()
        failing = list(config.faults.fail_commands)
        for n in names:
            attr = _ATTRS.get(n)
            if attr:
                setattr(config.faults, attr, getattr(fresh, attr))
        for command in failing if "fail-command" in names else []:
            rootfs.set_failing(config.fs_root, command, False)
    return [n for n in names if n in {k for k, _ in before}]


_ATTRS = {
    "corrupt-bytes": "corrupt_bytes",
    "fail-command": "fail_commands",
    "genie-crash-after": "crash_after_tokens",
    "genie-hang-before-first-token": "hang_before_first_token",
    "genie-fail-load": "fail_load",
}


def active(config: EmulatorConfig) -> list[tuple[str, str]]:
    """(name, value) of every switch that is on."""
    f = config.faults
    out: list[tuple[str, str]] = []
    if config.drop_after_bytes is not None:
        out.append(("drop-after-bytes", str(config.drop_after_bytes)))
    if f.corrupt_bytes is not None:
        out.append(("corrupt-bytes", str(f.corrupt_bytes)))
    out += [("fail-command", command) for command in f.fail_commands]
    if f.crash_after_tokens is not None:
        out.append(("genie-crash-after", str(f.crash_after_tokens)))
    if f.hang_before_first_token:
        out.append(("genie-hang-before-first-token", ""))
    if f.fail_load:
        out.append(("genie-fail-load", ""))
    return out


def list_faults(root: Path) -> list[tuple[str, str]]:
    try:
        return active(EmulatorConfig.load(root))
    except FileNotFoundError:
        raise FaultError(
            f"no emulated phone in {root} (start one with `qwenchat emulator start`)"
        ) from None


def describe(name: str, value: str | None) -> str:
    return f"{name} {value}".strip()
