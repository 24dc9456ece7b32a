"""Running the app: uvicorn on a socket bound here, loopback unless a key guards it, and a
drain on SIGTERM/Ctrl-C (waiting requests refused, in-flight replies finish or are cut after
the grace period and stored, then every phone's genie-app is stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn

from qwenchat.errors import UsageError
from qwenchat.serve.app import ServeConfig, build_app
from qwenchat.serve.pool import Pool

DEFAULT_DRAIN_S = 30.0
# After a cut: the dialog abort (engine.ABORT_S at most, then a kill) and the store's write.
CUT_GRACE_S = 5.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """A server reachable from other machines must ask for a key: the phone's model, the
    stored conversations' owner and the phone's time are not for anyone on the network."""
    if not is_loopback(host) and not api_key:
        raise UsageError(
            f"--host {host} listens beyond this machine: give it an --api-key",
            hint="e.g. --api-key \"$(openssl rand -hex 16)\"; or keep the default --host 127.0.0.1.",
        )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free one); UsageError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Pick another --port, or stop what listens there.",
        ) from None
    # Accepted connections inherit it: a response's head and body go out at once, not the
    # body ~40 ms later behind the client's delayed ACK (Nagle) on a kept-alive connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, told about the pool: a stop signal starts the drain at once."""

    def __init__(self, config: uvicorn.Config, pool: Pool, drain_s: float) -> None:
        super().__init__(config)
        self.pool = pool
        self.drain_s = drain_s
        self.loop: asyncio.AbstractEventLoop | None = None

    def _drain(self) -> None:
        """Waiting requests are refused now; replies still running when the grace period
        ends are cut on the phone (dialog abort), so each is stored and its client gets an
        error event instead of a connection dropped mid-stream."""
        if self.pool.draining:
            return
        self.pool.drain()
        assert self.loop is not None
        self.loop.call_later(self.drain_s, self.pool.cut_all)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._drain)
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """From another thread: drain and stop, as a SIGTERM would (no-op once stopped)."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self.loop.call_soon_threadsafe(self._drain)
        self.should_exit = True


def make_server(pool: Pool, config: ServeConfig, drain_s: float = DEFAULT_DRAIN_S) -> _Server:
    app = build_app(pool, config)
    return _Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # uvicorn's own bound comes after ours (cut_all): the cut replies' last events
            # and the stores' writes get their time before any task is cancelled.
            timeout_graceful_shutdown=math.ceil(drain_s + CUT_GRACE_S),  # uvicorn: whole seconds
            # The body limit is the app's; no server header naming the stack.
            server_header=False,
        ),
        pool,
        drain_s,
    )


def serve(
    pool: Pool,
    sock: socket.socket,
    config: ServeConfig,
    *,
    drain_s: float = DEFAULT_DRAIN_S,
) -> None:
    """Serve on ``sock`` until SIGTERM/SIGINT (this thread must be the main one)."""
    make_server(pool, config, drain_s).run(sockets=[sock])


@dataclass
class RunningServer:
    """A server in a thread of this process (tests, benchmarks)."""

    url: str
    server: _Server
    thread: threading.Thread

    def stop(self, timeout: float = 60.0) -> None:
        self.server.stop()
        self.thread.join(timeout)


def start_in_thread(
    pool: Pool,
    config: ServeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    drain_s: float = DEFAULT_DRAIN_S,
    ready: Callable[[], None] | None = None,
) -> RunningServer:
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    server = make_server(pool, config or ServeConfig(), drain_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError("the server did not start")
    if ready is not None:
        ready()
    return RunningServer(f"http://{host}:{port}", server, thread)


__all__ = [
    "DEFAULT_DRAIN_S",
    "RunningServer",
    "bind",
    "check_exposure",
    "is_loopback",
    "make_server",
    "serve",
    "start_in_thread",
]
