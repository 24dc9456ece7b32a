"""The emulated phone as a background daemon: start it, find it, stop it.

``start_daemon`` runs ``python -m qwenchat.emulator.daemon --root DIR`` detached (its own
session, output to ``state/emulator.log``) and waits until it listens; the daemon writes
``state/emulator.json`` (pid, port, serial) once listening, and removes it when it stops.
``stop_daemon`` sends SIGTERM, waits, then SIGKILL. A state file naming a dead pid is stale:
``read_state`` removes it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator import EmulatorError
from qwenchat.emulator.config import EmulatorConfig
from qwenchat.emulator.server import EmulatorServer

STATE_FILE = "emulator.json"
DAEMON_LOG = "emulator.log"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class DaemonError(EmulatorError):
    """The daemon would not start or stop; message and hint for the user."""

    usage = True


@dataclass(frozen=True)
class Running:
    pid: int
    port: int
    serial: str
    address: str


def state_path(root: Path) -> Path:
    return Path(root) / "state" / STATE_FILE


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for this purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_state(root: Path) -> Running | None:
    """The running daemon, or None; a stale file (dead pid) is removed."""
    path = state_path(root)
    try:
        state = json.loads(path.read_text())
        running = Running(int(state["pid"]), int(state["port"]), str(state["serial"]),
                          str(state["address"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not pid_alive(running.pid):
        path.unlink(missing_ok=True)
        return None
    return running


def start_daemon(config: EmulatorConfig, port: int) -> Running:
    """Save ``config``, start the daemon detached, return once it listens."""
    running = read_state(config.root)
    if running is not None:
        raise DaemonError(
            f"a SIMULATED phone already runs from {config.root} at {running.address}",
            "Stop it first with `qwenchat emulator stop` (or pass another --root).",
        )
    config.save()
    log_path = config.state_dir / DAEMON_LOG
    with open(log_path, "ab") as out:
        start_offset = out.tell()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qwenchat.emulator.daemon",
                "--root",
                str(config.root),
                "--port",
                str(port),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # survives the terminal that started it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        running = read_state(config.root)
        if running is not None and running.pid == proc.pid:
            return running
        if proc.poll() is not None:
            why, hint = _last_error(log_path, start_offset)
            raise DaemonError(
                f"the SIMULATED phone did not start: {why}", hint or f"See {log_path}."
            )
        time.sleep(0.05)
    stop_pid(proc.pid)
    raise DaemonError(
        f"the SIMULATED phone did not start within {START_TIMEOUT_S:.0f} s", f"See {log_path}."
    )


def _last_error(log_path: Path, offset: int) -> tuple[str, str | None]:
    """The daemon's last ``error:`` line (and its ``hint:``) since ``offset``."""
    try:
        with open(log_path, errors="replace") as f:
            f.seek(offset)
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no output", None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error:"):
            hint = lines[i + 1] if i + 1 < len(lines) else ""
            return lines[i][6:].strip(), hint[5:].strip() if hint.startswith("hint:") else None
    return (lines[-1] if lines else "no output"), None


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, wait, then SIGKILL; True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not pid_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def stop_daemon(root: Path) -> Running | None:
    """Stop the daemon of ``root``; returns what ran (None: nothing ran)."""
    running = read_state(root)
    if running is None:
        return None
    killed = stop_pid(running.pid)
    state_path(root).unlink(missing_ok=True)
    if killed:
        # Killed before it could clean up: release /data here (the phone's processes died
        # with the daemon, --die-with-parent).
        from qwenchat.emulator.storage import Storage

        Storage(Path(root), 0).release()
    return running


def run_daemon(
    root: Path, port: int, on_ready: Callable[[EmulatorServer], None] | None = None
) -> int:
    """Serve until SIGTERM/SIGINT; ``state/emulator.json`` exists exactly while listening."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = EmulatorConfig.load(root)
    server = EmulatorServer(config, port=port)
    try:
        server.start()
    except EmulatorError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), flush=True)
        return 2 if exc.usage else 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    path = state_path(root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "port": server.port,
                "serial": server.serial,
                "address": server.address,
                "simulated": True,
                "free_space_enforced": server.phone.storage.enforced,
            }
        )  # fmt: skip
    )
    tmp.replace(path)
    if on_ready is not None:
        on_ready(server)
    try:
        while not done.wait(1.0):
            pass
    finally:
        server.stop()
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m qwenchat.emulator.daemon",
        description="Run a SIMULATED phone (device-side ADB server) in the foreground.",
    )
    parser.add_argument("--root", type=Path, required=True, help="the emulator's folder")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return run_daemon(args.root, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
