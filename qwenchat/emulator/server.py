"""Starting and stopping one emulated phone: in-process (tests) or as a daemon (the CLI).

``EmulatorServer`` binds 127.0.0.1 only (the emulated phone is never reachable from the
network), runs a thread per connection and per stream, and on ``stop()`` closes every socket
and kills whatever simulated genie-t2t-run processes its shells started.

As a daemon (``python -m qwenchat.emulator.server --root DIR``) it loads the settings the CLI
saved, and once listening writes ``state/emulator.json`` (pid, port, serial): the CLI waits
for that file, and deletes it when it finds the pid dead.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from qwenchat.emulator.adbd.auth import KeyStore
from qwenchat.emulator.adbd.connection import Connection, DeviceContext
from qwenchat.emulator.adbd.link import Link
from qwenchat.emulator.adbd.services import open_service
from qwenchat.emulator.config import LINK_SPEEDS_BPS, EmulatorConfig
from qwenchat.errors import UsageError

log = logging.getLogger("qwenchat.emulator")

HOST = "127.0.0.1"  # never 0.0.0.0: the emulator's shell must not be reachable from outside
STATE_FILE = "emulator.json"


class PortInUseError(UsageError):
    pass


class EmulatorServer:
    def __init__(self, config: EmulatorConfig, port: int = 0) -> None:
        if config.link not in LINK_SPEEDS_BPS:
            raise UsageError(
                f"unknown link {config.link!r}",
                f"Choose one of {', '.join(LINK_SPEEDS_BPS)}.",
            )
        self.config = config
        self.requested_port = port
        self.port: int | None = None
        self.phone = None
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[Connection] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def serial(self) -> str:
        return self.config.serial

    def start(self) -> None:
        from qwenchat.emulator.phone import Phone

        self.config.fs_root.mkdir(parents=True, exist_ok=True)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.save()  # the simulated genie-t2t-run (another process) reads it
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((HOST, self.requested_port))
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {self.requested_port} on {HOST} is in use",
                    "Stop what uses it (`qwenchat emulator stop`), or pass --port 0 for a free port.",
                ) from exc
            raise
        listener.listen(16)
        self.phone = Phone(self.config)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._ctx = DeviceContext(
            config=self.config,
            phone=self.phone,
            keys=KeyStore(self.config.state_dir),
            link=Link(LINK_SPEEDS_BPS[self.config.link]),
            open_service=open_service,
        )
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="adbd-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("SIMULATED phone listening on %s", self.address)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _peer = self._listener.accept()
            except OSError:
                return
            conn = Connection(sock, self._ctx)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="adbd-conn", daemon=True
            )
            with self._lock:
                if self._stopping.is_set():
                    conn.shutdown()
                    return
                self._connections.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: Connection) -> None:
        try:
            conn.serve()
        finally:
            with self._lock:
                self._connections.discard(conn)

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for conn in connections:
            conn.shutdown()  # streams see the hang-up: their shell sessions get SIGHUP
        if self.phone is not None:
            self.phone.shutdown(kill_children=True)  # hang up shells, kill launched genies
        for thread in threads:
            thread.join(timeout=5)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def authorize_pending(root: Path) -> list[str]:
    """Accept every key waiting on the phone ("always allow"); returns their lines."""
    keys = KeyStore(Path(root) / "state")
    return [key.line for key in keys.authorize_pending()]


def pending_keys(root: Path) -> list[str]:
    return [key.line for key in KeyStore(Path(root) / "state").pending()]


# --- daemon -------------------------------------------------------------------------------
def state_path(root: Path) -> Path:
    return Path(root) / "state" / STATE_FILE


def read_state(root: Path) -> dict | None:
    """The running daemon's pid/port/serial, or None; a stale file (dead pid) is removed."""
    path = state_path(root)
    try:
        state = json.loads(path.read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not pid_alive(pid):
        path.unlink(missing_ok=True)
        return None
    return state


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


def run_daemon(
    root: Path, port: int, on_ready: Callable[[EmulatorServer], None] | None = None
) -> int:
    """Serve until SIGTERM/SIGINT; ``state/emulator.json`` exists exactly while listening."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = EmulatorConfig.load(root)
    server = EmulatorServer(config, port=port)
    try:
        server.start()
    except UsageError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", flush=True)
        return 2
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
        prog="python -m qwenchat.emulator.server",
        description="Run a SIMULATED phone (device-side ADB server) in the foreground.",
    )
    parser.add_argument("--root", type=Path, required=True, help="the emulator's folder")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return run_daemon(args.root, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
