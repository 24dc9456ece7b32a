"""One emulated phone on a loopback port: its ADB server in front of its ``Phone``.

``EmulatorServer`` binds 127.0.0.1 only (the emulated phone is never reachable from the
network) and runs a thread per connection and per stream. ``start()`` brings the phone up
(storage, sandbox, init) before it listens; ``stop()`` closes every socket, then stops the
phone: its init (pid 1) exits and the kernel ends every process of the phone.

Running it as a background daemon (what ``qwenchat emulator start`` does) is
``qwenchat.emulator.daemon``.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from pathlib import Path

from qwenchat.emulator import EmulatorError
from qwenchat.emulator.adbd.auth import KeyStore
from qwenchat.emulator.adbd.connection import Connection, DeviceContext
from qwenchat.emulator.adbd.link import Link
from qwenchat.emulator.adbd.services import open_service
from qwenchat.emulator.commandlog import CommandLog
from qwenchat.emulator.config import LINK_SPEEDS_BPS, EmulatorConfig

log = logging.getLogger("qwenchat.emulator")

HOST = "127.0.0.1"  # never 0.0.0.0: the emulator's shell must not be reachable from outside


class BadSetting(EmulatorError):
    usage = True


class PortInUseError(EmulatorError):
    usage = True


class EmulatorServer:
    def __init__(self, config: EmulatorConfig, port: int = 0) -> None:
        if config.link not in LINK_SPEEDS_BPS:
            raise BadSetting(
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

    def _listen(self) -> socket.socket:
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
        return listener

    def start(self) -> None:
        """Bring the phone up and listen. Call it from a thread that outlives the server:
        the phone's sandbox dies with the thread that started it."""
        from qwenchat.emulator.phone import Phone

        self.config.fs_root.mkdir(parents=True, exist_ok=True)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.save()
        listener = self._listen()
        phone = Phone(self.config)
        try:
            phone.start()
        except BaseException:
            listener.close()
            raise
        self.phone = phone
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._ctx = DeviceContext(
            config=self.config,
            live=phone.live,
            phone=phone,
            keys=KeyStore(self.config.state_dir),
            link=Link(LINK_SPEEDS_BPS[self.config.link]),
            log=CommandLog(self.config.state_dir),
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
            conn.shutdown()  # streams see the hang-up: their shells get SIGHUP
        if self.phone is not None:
            self.phone.stop()  # pid 1 ends: the kernel ends every process of the phone
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
