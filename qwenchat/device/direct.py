"""Reaching a phone directly with adb-shell: no Google tool needed.

TCP (``adb tcpip`` phones, the emulated phone) goes through our own transport
(``transport.TcpTransport``: sendall, TCP_NODELAY, TCP_QUICKACK, real timeouts); USB goes
through adb-shell's libusb1 transport (``pip install 'qwenchat[usb]'``).

How we get exit codes and a separate stderr
-------------------------------------------
adb-shell only speaks ``shell:`` v1 (stdout and stderr merged, no exit code) and hides the
device banner. Our transport records the CNXN banner as it goes by during the handshake, so
we know the phone's ``features=``. When ``shell_v2`` is listed we open the
``shell,v2,raw:CMD`` service through adb-shell's stream primitives (``_open`` +
``_read_until_close``, private API of adb-shell 0.4.x, pinned ``<0.5`` in pyproject) and
decode the v2 frames ourselves: ``<B id><I len>`` + payload, 1 = stdout, 2 = stderr,
3 = exit code; frames may span WRTE payloads. Without ``shell_v2`` (very old phones) we fall
back to ``shell:`` with ``printf '\\n__qwenchat_rc=%d\\n' $?`` appended, strip that marker
from the end of the output, and report stderr merged into stdout.

Timeouts: adb-shell's own read timeout (10 s) would fire while a 7B model loads, so our
streams set the transport timeout per read from the caller's ``first_byte_timeout`` (None =
wait as long as it takes) and disable adb-shell's total read timeout.

Concurrency: several streams may be open at once on one connection and used from several
threads (a chat stream in one, a ``kill`` from a cancel thread): over TCP our packet reader
waits for bytes outside adb-shell's transport lock (``_TolerantIOManager``). Over USB
adb-shell's own reader is used, which holds the lock while waiting: use one thread there.
"""

from __future__ import annotations

import contextlib
import io
import math
import stat as stat_module
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Queue
from typing import Any

from adb_shell import constants, exceptions
from adb_shell.adb_device import AdbDevice, _AdbIOManager, _FileSyncTransactionInfo
from adb_shell.adb_message import AdbMessage
from adb_shell.hidden_helpers import _AdbPacketStore

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
from qwenchat.device.keys import load_signer
from qwenchat.device.shellproto import (
    EventShellStream,
    v1_events,
    v1_service,
    v2_close_stdin_frame,
    v2_events,
    v2_service,
    v2_stdin_frames,
)
from qwenchat.device.transport import (
    Banner,
    NotAdbError,
    TcpTransport,
    TransportClosedError,
    install_fast_checksum,
    usb_transport_class,
)
from qwenchat.errors import (
    DeviceCommandError,
    DeviceError,
    DeviceLostError,
    DeviceTimeoutError,
    DeviceUnauthorizedError,
    NoDeviceError,
    PhoneFullError,
)

DEFAULT_AUTH_TIMEOUT = 30.0
# The key was offered: the phone shows "Allow USB debugging?" now. A phone that accepts new
# keys by itself (the emulated one with --accept-new-keys) answers well within this.
AUTH_ANNOUNCE_AFTER_S = 0.25
HANDSHAKE_TIMEOUT = 10.0  # CNXN/OPEN/OKAY exchanges: a live phone answers in milliseconds
IO_TIMEOUT = 60.0  # silence tolerated inside a sync transfer
CLOSE_WAIT_S = 2.0  # a fed command's end after its EOF (`cat` ends at once)

WaitCallback = Callable[[str], None]


class _KeepingPacketStore(_AdbPacketStore):
    """adb-shell's store of packets read by one thread for another thread's stream, keeping
    every CLSE.

    adb-shell's ``_AdbPacketStore.put`` drops a CLSE for a stream that has no queue in the
    store yet (hidden_helpers.py, ``put``: "a new dictionary entry will not be created if
    cmd == CLSE"). A stream whose owner read all its WRTEs itself has no queue, so when another
    thread happened to read that stream's CLSE, the close was thrown away and the owner waited
    for it until its timeout (the two-thread intermittent: a ``kill`` from a cancel thread
    while the chat stream waits on a loading model stalled 5 s, about 1 run in 15).

    Keeping the CLSE would leave a queue behind for a stream nobody reads any more (one we
    closed early): those are ``abandon``-ed, and their late packets dropped, as adb-shell meant.
    """

    def __init__(self) -> None:
        super().__init__()
        self._abandoned: set[int] = set()  # our local ids of streams we closed early

    def abandon(self, remote_id: int, local_id: int) -> None:
        self._abandoned.add(local_id)
        self.clear(remote_id, local_id)

    def clear_all(self) -> None:
        super().clear_all()
        self._abandoned = set()

    def put(self, arg0, arg1, cmd, data) -> None:  # noqa: ANN001
        if arg1 in self._abandoned:
            if cmd == constants.CLSE:  # the phone's answer to our CLSE: the last packet
                self._abandoned.discard(arg1)
            return
        if cmd == constants.CLSE:
            self._dict.setdefault(arg1, {}).setdefault(arg0, Queue())
        super().put(arg0, arg1, cmd, data)


class _TolerantIOManager(_AdbIOManager):
    """adb-shell's packet reader with three fixes, same packets.

    1. A WRTE that arrives before the OKAY for our own WRTE (a reply overtaking the ack) is
       kept for later. adb-shell's ``read`` silently drops packets of the awaited stream it
       does not expect, so a sync reply sent just before its OKAY was lost and the command
       hung (seen against the emulated phone, ~1 in 300 stats). Google's adb accepts both.
    2. Waiting for bytes happens OUTSIDE the transport lock (in short slices, checking the
       packet store in between). adb-shell holds the lock while blocked in recv, so a thread
       waiting on a silent stream (a model loading) starved every other thread: a ``kill``
       from a cancel thread could not even send its OPEN. Needs ``wait_readable`` (our TCP
       transport); other transports get adb-shell's behaviour.
    3. A CLSE read by one thread for another thread's stream is kept (``_KeepingPacketStore``)
       instead of dropped, so the other thread sees its stream end.
    """

    SLICE = 0.05  # how often a waiting thread looks at packets another thread stored

    def __init__(self, transport) -> None:  # noqa: ANN001
        super().__init__(transport)
        self._packet_store = _KeepingPacketStore()

    def abandon(self, adb_info) -> None:  # noqa: ANN001
        """We closed this stream early: drop what still arrives for it."""
        with self._store_lock:
            self._packet_store.abandon(adb_info.remote_id, adb_info.local_id)

    def read(self, expected_cmds, adb_info, allow_zeros=False):  # noqa: ANN001, ANN201
        if constants.OKAY not in expected_cmds or constants.WRTE in expected_cmds:
            return self._read(expected_cmds, adb_info, allow_zeros)
        early: list[tuple] = []
        try:
            while True:
                packet = self._read([*expected_cmds, constants.WRTE], adb_info, allow_zeros)
                if packet[0] != constants.WRTE:
                    return packet
                early.append(packet)
        finally:
            with self._store_lock:  # in arrival order, where the next read looks first
                for cmd, arg0, arg1, data in early:
                    self._packet_store.put(arg0, arg1, cmd, data)

    def _from_store(self, expected_cmds, adb_info, allow_zeros):  # noqa: ANN001, ANN202
        store = self._packet_store
        find = store.find_allow_zeros if allow_zeros else store.find
        with self._store_lock:
            key = find(adb_info.remote_id, adb_info.local_id)
            while key:
                cmd, arg0, arg1, data = store.get(key[0], key[1])
                if cmd in expected_cmds:
                    return cmd, arg0, arg1, data
                key = find(adb_info.remote_id, adb_info.local_id)
        return None

    def _read(self, expected_cmds, adb_info, allow_zeros):  # noqa: ANN001, ANN202
        wait_readable = getattr(self._transport, "wait_readable", None)
        if wait_readable is None:
            return super().read(expected_cmds, adb_info, allow_zeros)
        started = time.monotonic()
        limits = [t for t in (adb_info.transport_timeout_s, adb_info.read_timeout_s) if t]
        deadline = started + min(limits) if limits and min(limits) != math.inf else None
        while True:
            found = self._from_store(expected_cmds, adb_info, allow_zeros)
            if found:
                return found
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise exceptions.TcpTimeoutException(
                    f"no answer within {time.monotonic() - started:.1f} s"
                )
            step = self.SLICE if remaining is None else min(self.SLICE, remaining)
            if not wait_readable(step):
                continue
            with self._transport_lock:
                found = self._from_store(expected_cmds, adb_info, allow_zeros)
                if found:
                    return found
                if not wait_readable(0):  # another thread took those bytes
                    continue
                cmd, arg0, arg1, data = self._read_packet_from_device(adb_info)
                if not adb_info.args_match(arg0, arg1, allow_zeros):
                    with self._store_lock:
                        self._packet_store.put(arg0, arg1, cmd, data)
                    continue
                if cmd == constants.CLSE:
                    with self._store_lock:
                        self._packet_store.clear(arg0, arg1)
                if cmd in expected_cmds:
                    return cmd, arg0, arg1, data


class DirectDevice(Device):
    """A phone reached with adb-shell over our TCP transport or over USB."""

    transport_name = "direct"
    # adb-shell's AdbDevice deadlocks when a shell stream opens during a sync push.
    concurrent_streams = False

    def __init__(self, adb: AdbDevice, transport, serial: str, kind: str) -> None:  # noqa: ANN001
        self._adb = adb
        self._transport = transport
        self.serial = serial  # HOST:PORT for TCP, the USB serial number for USB
        self.kind = kind  # "tcp" or "usb"
        self.banner: Banner = transport.banner or Banner()
        self._key_path: Path | None = None

    @contextlib.contextmanager
    def side_channel(self) -> Iterator[Device]:
        """Over TCP, a second ADB connection, so a stop from another thread never waits on the
        main connection's traffic. (Its first reason, a command left unanswered until its
        timeout when two threads read one connection, was adb-shell dropping a CLSE: fixed by
        ``_KeepingPacketStore``.) USB has one interface per phone, so it shares this
        connection."""
        if self.kind != "tcp":
            yield self
            return
        host, _, port = self.serial.rpartition(":")
        other = DirectDevice.connect_tcp(host, int(port), auth_timeout=5, key_path=self._key_path)
        try:
            yield other
        finally:
            other.close()

    # ---------------------------------------------------------------- connecting
    @classmethod
    def connect_tcp(
        cls,
        host: str,
        port: int,
        *,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
        on_wait: WaitCallback | None = None,
        key_path: Path | None = None,
        connect_timeout: float = 5.0,
    ) -> DirectDevice:
        address = f"{host}:{port}"
        transport = TcpTransport(host, port, connect_timeout=connect_timeout)
        adb = _adb_device(transport)
        try:
            _handshake(adb, address, auth_timeout, on_wait, key_path)
        except OSError as exc:
            if isinstance(exc, NotAdbError):
                raise NoDeviceError(
                    f"{address} does not speak ADB: it answered {exc.shown!r}",
                    "Check the port: a phone in `adb tcpip` mode listens on 5555, the "
                    "emulated phone on the port `qwenchat emulator status` shows.",
                ) from exc
            if isinstance(exc, TransportClosedError):
                raise DeviceError(
                    f"{address} closed the connection during the ADB handshake",
                    "Is it an ADB endpoint? On a phone run `adb tcpip 5555` first.",
                ) from exc
            raise NoDeviceError(
                f"cannot reach {address}: {exc.strerror or exc}",
                "Check the address, that the phone is on the same network and that "
                "`adb tcpip 5555` was run (or that the emulated phone is running).",
            ) from exc
        device = cls(adb, transport, address, "tcp")
        device._key_path = key_path
        return device

    @classmethod
    def connect_usb(
        cls,
        serial: str | None = None,
        *,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
        on_wait: WaitCallback | None = None,
        key_path: Path | None = None,
    ) -> DirectDevice:
        transport_cls = require_usb()
        try:
            transport = transport_cls.find_adb(serial=serial)
        except exceptions.UsbDeviceNotFoundError as exc:
            raise NoDeviceError(f"no USB phone{f' {serial}' if serial else ''} found") from exc
        name = serial or transport.serial_number or "usb"
        adb = _adb_device(transport)
        try:
            _handshake(adb, name, auth_timeout, on_wait, key_path)
        except Exception as exc:
            if isinstance(exc, DeviceError):
                raise
            raise DeviceError(
                f"cannot open the USB phone {name}: {exc}",
                "Another program may hold it: stop Google's adb server (`adb kill-server`) "
                "or use --transport server.",
            ) from exc
        return cls(adb, transport, name, "usb")

    # ---------------------------------------------------------------- properties
    @property
    def features(self) -> frozenset[str]:
        return self.banner.features

    @property
    def has_shell_v2(self) -> bool:
        return "shell_v2" in self.features

    # ---------------------------------------------------------------- shell
    def shell(self, command: str, *, timeout: float | None = 60.0) -> ShellResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        stdout = bytearray()
        with self.stream_shell(command, first_byte_timeout=timeout, idle_timeout=timeout) as stream:
            for chunk in stream:
                stdout += chunk
                if deadline is not None and time.monotonic() > deadline:
                    raise DeviceCommandError(
                        f"command did not finish within {timeout:g} s: {_short(command)}",
                        "The phone may be busy; try again, or raise the timeout.",
                    )
        code = stream.exit_code if stream.exit_code is not None else 255
        return ShellResult(exit_code=code, stdout=bytes(stdout), stderr=stream.stderr)

    def stream_shell(
        self,
        command: str,
        *,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> ShellStream:
        """``idle_timeout``: longest silence tolerated after the first byte (None = forever)."""
        service = v2_service(command) if self.has_shell_v2 else v1_service(command)
        with self._errors(f"starting {_short(command)}"):
            info = self._adb._open(service, HANDSHAKE_TIMEOUT, math.inf, None)
        decode = v2_events if self.has_shell_v2 else v1_events

        def on_close(finished: bool) -> None:
            if not finished:
                # Tell the phone we are gone; its answer (and any late WRTE) is dropped.
                with contextlib.suppress(Exception):
                    abandon = getattr(self._adb._io_manager, "abandon", None)
                    if abandon is not None:
                        abandon(info)
                    self._adb._io_manager.send(
                        AdbMessage(constants.CLSE, info.local_id, info.remote_id), info
                    )

        timeouts = ReadTimeouts(first_byte_timeout, idle_timeout)
        return EventShellStream(decode(self._payloads(info, command, timeouts)), on_close, timeouts)

    def _payloads(self, info, command: str, timeouts: ReadTimeouts) -> Iterator[bytes]:  # noqa: ANN001
        # adb-shell reads with info.transport_timeout_s on every packet: set it before each
        # read, after the consumer had its chance to change the bound.
        info.transport_timeout_s = timeouts.first
        with self._errors(f"running {_short(command)}"):
            for data in self._adb._read_until_close(info):
                yield data
                info.transport_timeout_s = timeouts.idle

    def open_stdin(self, command: str) -> StdinCommand:
        if not self.has_shell_v2:
            return super().open_stdin(command)
        with self._errors(f"starting {_short(command)}"):
            info = self._adb._open(v2_service(command), HANDSHAKE_TIMEOUT, math.inf, None)
        return _DirectStdin(self, info, command)

    # ---------------------------------------------------------------- files
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
        callback = None
        if progress is not None:

            def callback(_path: str, sent: int, _total: int) -> None:
                progress(sent)

        with self._errors(f"pushing {local.name} to {remote}"):
            self._adb.push(
                str(local),
                remote,
                st_mode=stat_module.S_IFREG | mode,
                mtime=mtime or int(time.time()),
                progress_callback=callback,
                transport_timeout_s=IO_TIMEOUT,
                read_timeout_s=IO_TIMEOUT,
            )

    def push_bytes(self, data: bytes, remote: str, *, mode: int = 0o644) -> None:
        with self._errors(f"pushing {len(data)} bytes to {remote}"):
            self._adb.push(
                io.BytesIO(data),
                remote,
                st_mode=stat_module.S_IFREG | mode,
                mtime=int(time.time()),
                transport_timeout_s=IO_TIMEOUT,
                read_timeout_s=IO_TIMEOUT,
            )

    def file_sender(self) -> FileSender:
        return _DirectSender(self)

    def pull(self, remote: str, local: Path) -> None:
        with partial_file(local) as partial, self._errors(f"pulling {remote}"):
            self._adb.pull(
                remote, str(partial), transport_timeout_s=IO_TIMEOUT, read_timeout_s=IO_TIMEOUT
            )

    def pull_bytes(self, remote: str) -> bytes:
        buffer = io.BytesIO()
        with self._errors(f"pulling {remote}"):
            self._adb.pull(
                remote, buffer, transport_timeout_s=IO_TIMEOUT, read_timeout_s=IO_TIMEOUT
            )
        return buffer.getvalue()

    def stat(self, remote: str) -> RemoteStat | None:
        with self._errors(f"stat {remote}"):
            mode, size, mtime = self._adb.stat(
                remote, transport_timeout_s=HANDSHAKE_TIMEOUT, read_timeout_s=HANDSHAKE_TIMEOUT
            )
        if (mode, size, mtime) == (0, 0, 0):  # sync STAT's way of saying "no such file"
            return None
        return RemoteStat(mode=mode, size=size, mtime=mtime)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._adb.close()

    # ---------------------------------------------------------------- errors
    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """adb-shell and socket exceptions → one qwenchat error with a hint."""
        try:
            yield
        except exceptions.PushFailedError as exc:
            message = _failure_text(exc)
            if "space" in message.lower() or "ENOSPC" in message:
                raise PhoneFullError(f"{what}: the phone is full ({message})") from exc
            raise DeviceCommandError(f"{what} failed: {message}") from exc
        except exceptions.AdbCommandFailureException as exc:
            raise DeviceCommandError(f"{what} failed: {_failure_text(exc)}") from exc
        except (exceptions.TcpTimeoutException, exceptions.AdbTimeoutError) as exc:
            raise DeviceTimeoutError(
                f"{self.serial} stopped answering while {what}",
                "Check the cable or network link; reconnect and try again.",
            ) from exc
        except (TransportClosedError, ConnectionError, exceptions.AdbConnectionError) as exc:
            raise DeviceLostError(f"lost the connection to {self.serial} while {what}") from exc
        except OSError as exc:
            raise DeviceError(f"{what}: {exc}") from exc


class _DirectStdin(StdinCommand):
    """Stdin frames as WRTE packets on the command's own stream, each acked (OKAY) before the
    next: ADB's flow control. Whatever the command prints is left unread (kept by the packet
    store until the stream closes): only silent commands are fed this way."""

    def __init__(self, device: DirectDevice, info, command: str) -> None:  # noqa: ANN001
        self._device, self._info, self._command = device, info, command
        self._ended = False

    def write(self, data: bytes, *, timeout: float = 10.0) -> None:
        adb, info = self._device._adb, self._info
        for frame in v2_stdin_frames(data, adb.max_chunk_size):
            if self._ended:
                raise DeviceCommandError(f"{_short(self._command)} has ended on the phone")
            info.transport_timeout_s = timeout
            with self._device._errors(f"feeding {_short(self._command)}"):
                adb._io_manager.send(
                    AdbMessage(constants.WRTE, info.local_id, info.remote_id, frame), info
                )
                answer = adb._io_manager.read([constants.OKAY, constants.CLSE], info)
            if answer[0] == constants.CLSE:  # the command ended: its input is gone
                self.close()
                raise DeviceCommandError(f"{_short(self._command)} has ended on the phone")

    def close(self) -> None:
        """Close-stdin, then wait (briefly) for the command to end on its EOF: closing the
        stream at once would hang it up (SIGHUP) before it read what was written last."""
        if self._ended:
            return
        self._ended = True
        adb, info = self._device._adb, self._info
        with contextlib.suppress(Exception):
            info.transport_timeout_s = CLOSE_WAIT_S
            frame = v2_close_stdin_frame()
            adb._io_manager.send(
                AdbMessage(constants.WRTE, info.local_id, info.remote_id, frame), info
            )
            deadline = time.monotonic() + CLOSE_WAIT_S
            while time.monotonic() < deadline:
                cmd, _data = adb._read_until([constants.CLSE, constants.WRTE], info)
                if cmd == constants.CLSE:
                    adb._io_manager.send(
                        AdbMessage(constants.CLSE, info.local_id, info.remote_id), info
                    )
                    return
        with contextlib.suppress(Exception):  # it did not end: hang it up
            adb._io_manager.abandon(info)
            adb._io_manager.send(AdbMessage(constants.CLSE, info.local_id, info.remote_id), info)


class _DirectSender(FileSender):
    """One ``sync:`` stream kept open, each file sent with adb-shell's own SEND/DATA/DONE
    (``_push``, the private API this module already pins). A failed send closes the stream
    (its state is unknown); the next send opens another."""

    def __init__(self, device: DirectDevice) -> None:
        self._device = device
        self._info = None

    def send(self, data: bytes, remote: str, *, mode: int = 0o644) -> None:
        adb = self._device._adb
        try:
            with self._device._errors(f"pushing {len(data)} bytes to {remote}"):
                if self._info is None:
                    self._info = adb._open(b"sync:", IO_TIMEOUT, IO_TIMEOUT, None)
                sync = _FileSyncTransactionInfo(constants.FILESYNC_PUSH_FORMAT, maxdata=adb._maxdata)
                adb._push(
                    io.BytesIO(data), remote, stat_module.S_IFREG | mode, int(time.time()),
                    None, self._info, sync,
                )  # fmt: skip
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        info, self._info = self._info, None
        if info is None:
            return
        io_manager = self._device._adb._io_manager
        with contextlib.suppress(Exception):  # no wait for the phone's CLSE: nothing follows
            io_manager.abandon(info)
            io_manager.send(AdbMessage(constants.CLSE, info.local_id, info.remote_id), info)


def _adb_device(transport) -> AdbDevice:  # noqa: ANN001
    adb = AdbDevice(transport)
    adb._io_manager = _TolerantIOManager(transport)
    return adb


def _handshake(
    adb: AdbDevice,
    name: str,
    auth_timeout: float,
    on_wait: WaitCallback | None,
    key_path: Path | None,
) -> None:

    install_fast_checksum()  # idempotent; numpy imported at the first large payload
    import threading

    waiting = False
    announce: threading.Timer | None = None

    def _auth_callback(_device: object) -> None:
        # adb-shell calls this as soon as it offers our public key; a phone that already
        # trusts it (or accepts at once) answers within milliseconds. Only say we are
        # waiting for the dialog once the phone has really kept us waiting.
        nonlocal waiting, announce
        waiting = True
        if on_wait is not None:
            announce = threading.Timer(
                min(AUTH_ANNOUNCE_AFTER_S, auth_timeout / 2),
                on_wait,
                args=(
                    f'{name}: waiting up to {auth_timeout:g} s for you to accept "Allow USB '
                    'debugging?" on the phone',
                ),
            )
            announce.daemon = True
            announce.start()

    try:
        adb.connect(
            rsa_keys=[load_signer(key_path)],
            transport_timeout_s=HANDSHAKE_TIMEOUT,
            auth_timeout_s=auth_timeout,
            read_timeout_s=HANDSHAKE_TIMEOUT,
            auth_callback=_auth_callback,
        )
    except Exception as exc:
        adb.close()
        if waiting or isinstance(exc, exceptions.DeviceAuthError):
            raise DeviceUnauthorizedError(
                f"{name} did not authorize this computer"
                + (f" within {auth_timeout:g} s" if waiting else "")
            ) from exc
        if isinstance(exc, exceptions.TcpTimeoutException | exceptions.AdbTimeoutError):
            raise DeviceError(
                f"{name} accepted the connection but never answered the ADB handshake "
                f"within {HANDSHAKE_TIMEOUT:g} s",
                "Is it an ADB endpoint (an HTTP server, for one, waits silently)? On a phone "
                "run `adb tcpip 5555` first; the emulated phone's port is in "
                "`qwenchat emulator status`.",
            ) from exc
        raise
    finally:
        if announce is not None:
            announce.cancel()


def require_usb() -> Any:  # adb-shell's class: the library ships no types
    """adb-shell's USB transport, or a clear error when libusb1 is missing."""
    try:
        return usb_transport_class()
    except ImportError as exc:
        raise DeviceError(
            "USB support is not installed (the usb1/libusb1 module is missing)",
            "pip install 'qwenchat[usb]' (and the libusb-1.0 system library), "
            "or reach the phone over TCP with `qwenchat connect HOST:PORT`.",
        ) from exc


def _failure_text(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    return str(text).removeprefix("Command failed: ").strip()


def _short(command: str, limit: int = 60) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"
