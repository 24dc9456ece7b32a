"""Reaching a phone through Google's adb server (``adb start-server``), when it holds the phone.

A USB phone can be claimed by one program only: when the developer's adb server has it, we
must go through the server. adbutils lists devices and reads features; the per-command
sockets are ours (``host:transport:SERIAL`` then the service), because:

* adbutils' ``shell2(v2=True)`` only returns whole outputs (no stream) and asks the server
  for its version on every command; its socket ``close()`` sleeps 10 ms;
* its sync ``push`` sends 4 KiB chunks with the current time as mtime and no progress.

Exit codes and stderr come from shell protocol v2 (``shell,v2,raw:``) decoded by
``shellproto`` exactly as the direct transport does; ``shell:`` + marker without ``shell_v2``.
We never start a server ourselves (adbutils would, on a failed connect): ``server_running``
checks the port first with a short timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat as stat_module
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from qwenchat.device.base import (
    Device,
    FileSender,
    ProgressCallback,
    ReadTimeouts,
    RemoteStat,
    ShellResult,
    ShellStream,
    StdinCommand,
    partial_file,
    push_source,
)
from qwenchat.device.shellproto import (
    EXIT,
    Event,
    EventShellStream,
    v1_events,
    v1_service,
    v2_close_stdin_frame,
    v2_events,
    v2_service,
    v2_stdin_frames,
)
from qwenchat.errors import (
    DeviceCommandError,
    DeviceError,
    DeviceLostError,
    DeviceTimeoutError,
    NoDeviceError,
    PhoneFullError,
)

DEFAULT_SERVER_PORT = 5037
SYNC_CHUNK = 64 * 1024  # the sync protocol's largest DATA
IO_TIMEOUT = 60.0
CLOSE_WAIT_S = 2.0  # a fed command's end after its EOF (`cat` ends at once)
HANDSHAKE_S = 10.0  # the server's OKAY for a service: a live phone answers in milliseconds
_SERVER_PACKET = 64 * 1024  # stdin frames at most this big (the server splits them further)


ServerAddress = tuple[str, int]  # (host, port) of an adb server; None below: the local one


def server_address(server: ServerAddress | None = None) -> ServerAddress:
    """``server``, else this computer's own (ANDROID_ADB_SERVER_HOST/PORT, as adb reads them)."""
    if server is not None:
        return server
    host = os.environ.get("ANDROID_ADB_SERVER_HOST") or "127.0.0.1"
    port = int(os.environ.get("ANDROID_ADB_SERVER_PORT") or DEFAULT_SERVER_PORT)
    return host, port


def server_running(timeout: float = 0.3, server: ServerAddress | None = None) -> bool:
    """Whether something listens on the adb server port (never starts one)."""
    try:
        with socket.create_connection(server_address(server), timeout=timeout):
            return True
    except OSError:
        return False


def _client(server: ServerAddress | None = None):  # noqa: ANN202 - adbutils.AdbClient
    import adbutils

    host, port = server_address(server)
    return adbutils.AdbClient(host=host, port=port, socket_timeout=10)


def server_devices(server: ServerAddress | None = None) -> list[tuple[str, str]]:
    """(serial, state) of every device the running server knows; [] when none runs."""
    if not server_running(server=server):
        return []
    try:
        return [(info.serial, info.state) for info in _client(server).list()]
    except Exception:  # a dying server or something else on the port: no devices from it
        return []


def query_server(server: ServerAddress, timeout: float = 3.0) -> list[tuple[str, str]]:
    """(serial, state) of every device ``server`` holds; raises DeviceError saying why when
    it does not answer (refused, timed out, not an adb server): a fleet listing shows that
    as one line and goes on with the other servers."""
    host, port = server
    where = f"adb server {host}:{port}"
    try:
        with socket.create_connection(server, timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"%04x" % len(b"host:devices") + b"host:devices")
            reply = _read_exactly(sock, 4)
            length = int(_read_exactly(sock, 4), 16)
            text = _read_exactly(sock, length).decode("utf-8", errors="replace")
    except TimeoutError:
        raise NoDeviceError(f"{where}: not answering (no reply in {timeout:g} s)") from None
    except ConnectionRefusedError:
        raise NoDeviceError(f"{where}: not answering (connection refused)") from None
    except (OSError, ValueError) as exc:
        raise NoDeviceError(f"{where}: not answering as an adb server ({exc})") from None
    if reply != b"OKAY":
        raise DeviceError(f"{where}: refused to list its devices: {text}")
    found = []
    for line in text.splitlines():
        serial, _, state = line.partition("\t")
        if serial:
            found.append((serial, state.strip()))
    return found


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed before its reply")
        data += chunk
    return bytes(data)


def server_connect(address: str) -> str:
    """``adb connect ADDRESS`` through the running server; its answer."""
    return str(_client().connect(address, timeout=10))


class _SmartSocket:
    """One connection to the adb server, switched to a device service."""

    def __init__(
        self,
        serial: str,
        service: bytes,
        timeout: float | None,
        server: ServerAddress | None = None,
    ) -> None:
        self.sock = socket.create_connection(server_address(server), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._request(f"host:transport:{serial}".encode())
            self._request(service)
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(timeout)

    def _request(self, payload: bytes) -> None:
        self.sock.sendall(b"%04x" % len(payload) + payload)
        status = self.read_exact(4)
        if status == b"OKAY":
            return
        length = int(self.read_exact(4), 16)
        message = self.read_exact(length).decode("utf-8", errors="replace")
        raise DeviceCommandError(f"adb server: {message}")

    def read_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the adb server closed the connection")
            data += chunk
        return bytes(data)

    def payloads(self) -> Iterator[bytes]:
        while True:
            chunk = self.sock.recv(256 * 1024)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _ServerStdin(StdinCommand):
    """Stdin frames written on the command's own adb-server socket (the server does ADB's
    flow control for us)."""

    def __init__(self, device: ServerDevice, conn: _SmartSocket) -> None:
        self._device, self._conn = device, conn

    def write(self, data: bytes, *, timeout: float = 10.0) -> None:
        with self._device._errors("feeding a command's input"):
            self._conn.sock.settimeout(timeout)
            for frame in v2_stdin_frames(data, _SERVER_PACKET):
                self._conn.sock.sendall(frame)

    def close(self) -> None:
        """Close-stdin, then wait (briefly) for the command to end on its EOF: closing the
        socket at once would hang it up before it read what was written last."""
        with contextlib.suppress(OSError):
            self._conn.sock.sendall(v2_close_stdin_frame())
            self._conn.sock.settimeout(CLOSE_WAIT_S)
            deadline = time.monotonic() + CLOSE_WAIT_S
            while time.monotonic() < deadline and self._conn.sock.recv(4096):
                pass
        self._conn.close()


class _ServerSender(FileSender):
    """One sync socket kept open; a failed send closes it (its state is unknown), the next
    opens another."""

    def __init__(self, device: ServerDevice) -> None:
        self._device = device
        self._conn: _SmartSocket | None = None

    def send(self, data: bytes, remote: str, *, mode: int = 0o644) -> None:
        import io

        if self._conn is None:
            self._conn = self._device._open(b"sync:", IO_TIMEOUT)
        try:
            self._device._send_on(self._conn, io.BytesIO(data), remote, mode, int(time.time()), None)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sock.sendall(b"QUIT" + struct.pack("<I", 0))
            conn.close()


class ServerDevice(Device):
    """A phone held by Google's adb server, reached with adbutils + our own sockets."""

    transport_name = "server"
    concurrent_streams = True  # one socket per command through the adb server

    def __init__(self, serial: str, server: ServerAddress | None = None) -> None:
        self.serial = serial
        self.kind = "server"
        # Which adb server holds it: None is this computer's own; a remote one (another
        # host's `adb -a`, a device farm) is named wherever the phone is.
        self.server = server
        with self._errors("reading its features"):
            features = _client(server).device(serial=serial).get_features()
        self.features = frozenset(f for f in features.strip().split(",") if f)

    @property
    def has_shell_v2(self) -> bool:
        return "shell_v2" in self.features

    @property
    def name(self) -> str:
        if self.server is None:
            return self.serial
        host, port = self.server
        return f"{self.serial}@{host}:{port}"

    def _open(self, service: bytes, timeout: float | None) -> _SmartSocket:
        with self._errors(f"opening {service[:40].decode(errors='replace')}"):
            return _SmartSocket(self.serial, service, timeout, self.server)

    # ---------------------------------------------------------------- shell
    def shell(self, command: str, *, timeout: float | None = 60.0) -> ShellResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        stdout = bytearray()
        with self.stream_shell(command, first_byte_timeout=timeout, idle_timeout=timeout) as stream:
            for chunk in stream:
                stdout += chunk
                if deadline is not None and time.monotonic() > deadline:
                    raise DeviceCommandError(f"command did not finish within {timeout:g} s")
        code = stream.exit_code if stream.exit_code is not None else 255
        return ShellResult(exit_code=code, stdout=bytes(stdout), stderr=stream.stderr)

    def stream_shell(
        self,
        command: str,
        *,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> ShellStream:
        service = v2_service(command) if self.has_shell_v2 else v1_service(command)
        conn = self._open(service, first_byte_timeout)
        decode = v2_events if self.has_shell_v2 else v1_events

        timeouts = ReadTimeouts(first_byte_timeout, idle_timeout)

        def payloads() -> Iterator[bytes]:
            with self._errors("running a command"):
                for data in conn.payloads():
                    yield data
                    # Before the next read, after the consumer had its chance to change it.
                    conn.sock.settimeout(timeouts.idle)

        events = decode(payloads())
        if self.has_shell_v2:
            events = self._until_exit(events)
        return EventShellStream(events, lambda _finished: conn.close(), timeouts)

    def _until_exit(self, events: Iterator[Event]) -> Iterator[Event]:
        """A shell_v2 stream always ends with the command's exit status; one that ends
        without it was cut by the adb server because the phone's link dropped (the server
        closes every stream of a transport it loses). That is a lost phone, as on the direct
        transport, not a command that died."""
        exited = False
        for event in events:
            exited = exited or event[0] == EXIT
            yield event
        if not exited:
            raise DeviceLostError(
                f"lost the connection to {self.serial} while running a command (the adb "
                "server ended the stream without its exit status)"
            )

    def open_stdin(self, command: str) -> StdinCommand:
        if not self.has_shell_v2:
            return super().open_stdin(command)
        return _ServerStdin(self, self._open(v2_service(command), HANDSHAKE_S))

    # ---------------------------------------------------------------- sync
    def push(
        self,
        local: Path,
        remote: str,
        *,
        mode: int = 0o644,
        mtime: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        local, mtime = push_source(local, mtime)
        with open(local, "rb") as source:
            self._send(source, remote, mode, mtime, progress)

    def push_bytes(self, data: bytes, remote: str, *, mode: int = 0o644) -> None:
        import io

        self._send(io.BytesIO(data), remote, mode, int(time.time()), None)

    def _send(self, source, remote: str, mode: int, mtime: int, progress) -> None:  # noqa: ANN001
        conn = self._open(b"sync:", IO_TIMEOUT)
        try:
            self._send_on(conn, source, remote, mode, mtime, progress)
            with self._errors(f"pushing to {remote}"):
                conn.sock.sendall(b"QUIT" + struct.pack("<I", 0))
        finally:
            conn.close()

    def _send_on(self, conn: _SmartSocket, source, remote: str, mode: int, mtime: int, progress) -> None:  # noqa: ANN001, E501
        """One SEND on an open sync socket, to the phone's answer."""
        with self._errors(f"pushing to {remote}"):
            header = f"{remote},{stat_module.S_IFREG | mode}".encode()
            conn.sock.sendall(b"SEND" + struct.pack("<I", len(header)) + header)
            while chunk := source.read(SYNC_CHUNK):
                conn.sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                if progress is not None:
                    progress(len(chunk))
            conn.sock.sendall(b"DONE" + struct.pack("<I", mtime))
            status, length = struct.unpack("<4sI", conn.read_exact(8))
            if status != b"OKAY":
                message = conn.read_exact(length).decode("utf-8", errors="replace")
                if "space" in message.lower():
                    raise PhoneFullError(f"pushing to {remote}: the phone is full ({message})")
                raise DeviceCommandError(f"pushing to {remote} failed: {message}")

    def file_sender(self) -> FileSender:
        return _ServerSender(self)

    def _recv(self, remote: str) -> Iterator[bytes]:
        conn = self._open(b"sync:", IO_TIMEOUT)
        try:
            with self._errors(f"pulling {remote}"):
                path = remote.encode()
                conn.sock.sendall(b"RECV" + struct.pack("<I", len(path)) + path)
                while True:
                    kind, length = struct.unpack("<4sI", conn.read_exact(8))
                    if kind == b"DATA":
                        yield conn.read_exact(length)
                    elif kind == b"DONE":
                        break
                    elif kind == b"FAIL":
                        message = conn.read_exact(length).decode("utf-8", errors="replace")
                        raise DeviceCommandError(f"pulling {remote} failed: {message}")
                    else:
                        raise DeviceError(f"pulling {remote}: unexpected sync reply {kind!r}")
                conn.sock.sendall(b"QUIT" + struct.pack("<I", 0))
        finally:
            conn.close()

    def pull(self, remote: str, local: Path) -> None:
        with partial_file(local) as partial, open(partial, "wb") as out:
            for chunk in self._recv(remote):
                out.write(chunk)

    def pull_bytes(self, remote: str) -> bytes:
        return b"".join(self._recv(remote))

    def stat(self, remote: str) -> RemoteStat | None:
        conn = self._open(b"sync:", IO_TIMEOUT)
        try:
            with self._errors(f"stat {remote}"):
                path = remote.encode()
                conn.sock.sendall(b"STAT" + struct.pack("<I", len(path)) + path)
                kind, mode, size, mtime = struct.unpack("<4sIII", conn.read_exact(16))
                conn.sock.sendall(b"QUIT" + struct.pack("<I", 0))
        finally:
            conn.close()
        if kind != b"STAT":
            raise DeviceError(f"stat {remote}: unexpected sync reply {kind!r}")
        if (mode, size, mtime) == (0, 0, 0):
            return None
        return RemoteStat(mode=mode, size=size, mtime=mtime)

    def close(self) -> None:
        """Every command has its own socket: nothing stays open."""

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except DeviceError:
            raise
        except TimeoutError as exc:
            raise DeviceTimeoutError(
                f"{self.serial} stopped answering while {what}",
                "Check the cable or network link; `adb devices` shows whether adb still sees it.",
            ) from exc
        except ConnectionRefusedError as exc:
            raise NoDeviceError(
                "the adb server stopped", "Start it with `adb start-server`."
            ) from exc
        except (ConnectionError, EOFError) as exc:
            raise DeviceLostError(f"lost the connection to {self.serial} while {what}") from exc
        except OSError as exc:
            raise DeviceError(f"{self.serial}: {what}: {exc}") from exc
        except Exception as exc:  # adbutils' own errors (AdbError, AdbTimeout)
            if type(exc).__module__.startswith("adbutils"):
                raise DeviceError(f"{self.serial}: {what}: {exc}") from exc
            raise
