"""Emulated phones held by Google's adb server, as another computer's phones are.

A device farm or a colleague's computer hands its phones out through its own adb server
(``adb -a -P PORT nodaemon server`` on that host); qwenchat reaches them with
``--adb-server HOST:PORT``. Here the stand-in is Google's adb on a loopback port of this
machine (never ``-a``: the emulated phone stays on loopback): ``hold_in_adb_server`` starts
it when nothing listens there, authorizes its key on each phone (the server is the
user's own, as when one ticks "always allow" on a phone), ``adb connect``s each phone and
waits, bounded, until the server calls it ``device``. ``state/front.json`` remembers the
port, so ``qwenchat emulator stop`` can ``adb disconnect`` the phone there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from qwenchat.emulator import EmulatorError

FRONT_FILE = "front.json"
ONLINE_TIMEOUT_S = 15.0


class FrontError(EmulatorError):
    """Google's adb server would not take the phones."""


def _adb(port: int, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    adb = shutil.which("adb")
    if adb is None:
        raise FrontError(
            "Google's adb is not installed", "Install it (Debian: apt-get install adb)."
        )
    try:
        return subprocess.run(
            [adb, "-P", str(port), *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise FrontError(f"`adb -P {port} {' '.join(args)}` did not answer in {timeout:g} s") from None


def _authorize_adb_key(roots: list[Path]) -> None:
    """Google's adb key (made by its first start-server) authorized on each phone."""
    from qwenchat.emulator.adbd.auth import KeyStore, parse_public_key

    home = Path(os.environ.get("ANDROID_USER_HOME") or Path.home() / ".android")
    pub = home / "adbkey.pub"
    if not pub.exists():
        return  # auth off, or the user authorizes later: `qwenchat emulator authorize`
    key = parse_public_key(pub.read_text())
    for root in roots:
        store = KeyStore(Path(root) / "state")
        if not store.is_authorized(key):
            store.add_authorized(key)


def _state(port: int, address: str) -> str | None:
    for line in _adb(port, "devices").stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == address:
            return fields[1]
    return None


def hold_in_adb_server(port: int, addresses: list[str], roots: list[Path]) -> None:
    """``adb -P PORT connect`` each phone; returns once the server holds every one."""
    started = _adb(port, "start-server")
    if started.returncode != 0:
        raise FrontError(
            f"Google's adb server would not start on port {port}: "
            f"{(started.stderr or started.stdout).strip()}",
            "Pick another --behind-adb-server port.",
        )
    _authorize_adb_key(roots)
    for address, root in zip(addresses, roots, strict=True):
        _adb(port, "connect", address)
        state_dir = Path(root) / "state"
        tmp = state_dir / f".{FRONT_FILE}.tmp"
        tmp.write_text(json.dumps({"adb_server_port": port, "address": address}))
        tmp.replace(state_dir / FRONT_FILE)
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    waiting = list(addresses)
    while waiting and time.monotonic() < deadline:
        waiting = [a for a in waiting if _state(port, a) != "device"]
        if waiting:
            time.sleep(0.1)
    if waiting:
        raise FrontError(
            f"the adb server on port {port} does not see {', '.join(waiting)} as a device "
            f"within {ONLINE_TIMEOUT_S:g} s",
            f"`adb -P {port} devices` shows their state; `qwenchat emulator authorize` "
            "accepts a waiting key.",
        )


def release_from_adb_server(root: Path, address: str) -> None:
    """``adb disconnect`` a stopped phone from the server that held it (if one did)."""
    path = Path(root) / "state" / FRONT_FILE
    try:
        port = int(json.loads(path.read_text())["adb_server_port"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        _adb(port, "disconnect", address, timeout=10)
    except FrontError:
        pass  # the server is gone: it holds nothing
    path.unlink(missing_ok=True)
