"""Which phone, reached which way.

Candidates: ``--connect HOST:PORT``, the endpoints remembered by ``qwenchat connect``, the
devices a running adb server holds, and USB phones (when libusb1 is installed). ``auto``
prefers the adb server for a phone it holds (a USB phone can be claimed by one program only),
else goes direct; ``--transport server|direct`` forces one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from qwenchat.device.base import Device
from qwenchat.device.direct import DirectDevice
from qwenchat.device.endpoints import load_endpoints, looks_like_endpoint, parse_endpoint
from qwenchat.device.server import ServerDevice, server_devices
from qwenchat.device.transport import usb_transport_class
from qwenchat.errors import (
    DeviceError,
    DeviceUnauthorizedError,
    NoDeviceError,
    SeveralDevicesError,
    UsageError,
)
from qwenchat.errors import NoDeviceError as _E

TRANSPORTS = ("auto", "server", "direct")
DEFAULT_AUTH_TIMEOUT = 30.0


@dataclass(frozen=True)
class DeviceSummary:
    serial: str  # what -s takes: HOST:PORT, a USB serial, or the adb server's serial
    transport: str  # "direct" or "server"
    kind: str  # "tcp", "usb" or "server"
    state: str  # "device", "unauthorized", "offline", ... (adb's words)

    @property
    def usable(self) -> bool:
        return self.state in ("device", "unauthorized")


def _check_transport(transport: str) -> str:
    value = (transport or "auto").lower()
    if value not in TRANSPORTS:
        raise UsageError(f"unknown transport {transport!r}", "Use auto, server or direct.")
    return value


def _reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _usb_serials() -> list[str] | None:
    """Serials of USB phones; None when USB support (libusb1) is not installed."""
    try:

        transport_cls = usb_transport_class()
    except ImportError:
        return None
    try:
        return [t.serial_number for t in transport_cls.find_all_adb_devices()]
    except Exception:  # no permission on /dev/bus/usb, libusb errors: no USB phones for us
        return []


def list_devices(connect: str | None = None, transport: str = "auto") -> list[DeviceSummary]:
    """Every phone qwenchat could use, without opening any (cheap)."""

    transport = _check_transport(transport)
    found: list[DeviceSummary] = []
    held: set[str] = set()
    if transport in ("auto", "server"):
        for serial, state in server_devices():
            found.append(DeviceSummary(serial, "server", "server", state))
            held.add(serial)
    if transport in ("auto", "direct"):
        endpoints = load_endpoints()
        if connect:
            extra = parse_endpoint(connect)
            endpoints = [extra, *[e for e in endpoints if e != extra]]
        for endpoint in endpoints:
            if transport == "auto" and endpoint.address in held:
                continue
            state = "device" if _reachable(endpoint.host, endpoint.port) else "offline"
            found.append(DeviceSummary(endpoint.address, "direct", "tcp", state))
        for serial in _usb_serials() or []:
            if transport == "auto" and serial in held:
                continue
            found.append(DeviceSummary(serial, "direct", "usb", "device"))
    return found


def open_summary(
    summary: DeviceSummary,
    *,
    on_wait: Callable[[str], None] | None = None,
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
) -> Device:
    if summary.transport == "server":
        if summary.state == "unauthorized":
            raise DeviceUnauthorizedError(f"{summary.serial} has not authorized this computer")
        if summary.state != "device":
            raise DeviceError(f"the adb server reports {summary.serial} as {summary.state}")

        return ServerDevice(summary.serial)

    if summary.kind == "usb":
        return DirectDevice.connect_usb(summary.serial, auth_timeout=auth_timeout, on_wait=on_wait)

    endpoint = parse_endpoint(summary.serial)
    return DirectDevice.connect_tcp(
        endpoint.host, endpoint.port, auth_timeout=auth_timeout, on_wait=on_wait
    )


def _describe(candidates: list[DeviceSummary]) -> str:
    return ", ".join(f"{c.serial} ({c.transport}, {c.state})" for c in candidates)


def open_device(
    serial: str | None = None,
    connect: str | None = None,
    transport: str = "auto",
    on_wait: Callable[[str], None] | None = None,
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
) -> Device:
    """The one phone the user means, opened. Raises NoDeviceError, DeviceUnauthorizedError,
    SeveralDevicesError (listing them) or UsageError."""

    transport = _check_transport(transport)
    serial = serial or os.environ.get("ANDROID_SERIAL") or None
    if serial and "@" in serial and not connect:
        # SERIAL@HOST:PORT: a phone of another computer's adb server (`qwenchat devices`).
        from qwenchat.device.servers import parse_server

        held, _, where = serial.rpartition("@")
        server = parse_server(where)
        return ServerDevice(held, server=(server.host, server.port))

    def _open(summary: DeviceSummary) -> Device:
        return open_summary(summary, on_wait=on_wait, auth_timeout=auth_timeout)

    if connect:
        endpoint = parse_endpoint(connect)
        if transport != "direct":
            for held, state in server_devices():
                if held == endpoint.address:
                    if state == "offline" and transport == "auto":
                        # The server has not yet seen the phone come back (it re-dials on
                        # its own schedule): the phone itself answers, so reach it directly.
                        break
                    return _open(DeviceSummary(held, "server", "server", state))
            if transport == "server":
                raise NoDeviceError(
                    f"the adb server does not hold {endpoint.address}",
                    f"Run `adb connect {endpoint.address}`, or use --transport direct.",
                )
        return _open(DeviceSummary(endpoint.address, "direct", "tcp", "device"))

    candidates = list_devices(transport=transport)
    if serial:
        matching = [c for c in candidates if c.serial == serial]
        if not matching and looks_like_endpoint(serial) and transport != "server":
            # `-s HOST:PORT` of a phone never `connect`ed: reach it anyway, like --connect.
            endpoint = parse_endpoint(serial)
            return _open(DeviceSummary(endpoint.address, "direct", "tcp", "device"))
        if not matching:
            found = _match_serialno(serial, [c for c in candidates if c.usable], auth_timeout)
            if isinstance(found, Device):
                return found
            if found:  # phones whose serial we could not read: they did not let us in
                raise DeviceUnauthorizedError(
                    f"no authorized phone {serial!r}; not authorized: "
                    + ", ".join(c.serial for c in found)
                )
        if not matching:
            raise NoDeviceError(
                f"no phone {serial!r} found"
                + (f" (found: {_describe(candidates)})" if candidates else ""),
                "`qwenchat devices` lists the phones qwenchat can reach.",
            )
        candidates = matching

    usable = [c for c in candidates if c.usable]
    if not usable and transport == "auto":
        usable = _offline_but_answering(candidates)
    if not usable:
        offline = [c for c in candidates if not c.usable]
        raise NoDeviceError(
            "no phone found" + (f" ({_describe(offline)})" if offline else ""),
            _no_device_hint(transport),
        )
    if len(usable) > 1:
        raise SeveralDevicesError(f"{len(usable)} phones found: {_describe(usable)}")
    return _open(usable[0])


def _offline_but_answering(candidates: list[DeviceSummary]) -> list[DeviceSummary]:
    """TCP phones the adb server lists as offline while they answer on their own port.

    After a phone drops and returns, Google's adb server keeps it "offline" until its next
    reconnect attempt (seconds later). The same phone reached directly is the same answer
    the direct transport gives: so qwenchat says the same thing on both transports instead
    of "no phone found"."""
    found = []
    for c in candidates:
        if c.transport == "server" and c.state == "offline" and looks_like_endpoint(c.serial):
            endpoint = parse_endpoint(c.serial)
            if _reachable(endpoint.host, endpoint.port):
                found.append(DeviceSummary(endpoint.address, "direct", "tcp", "device"))
    return found


def _match_serialno(
    serial: str, candidates: list[DeviceSummary], auth_timeout: float
) -> Device | list[DeviceSummary]:
    """The one candidate that calls itself ``serial`` (ro.serialno), opened.

    Every candidate is asked: two phones may report one serial (two emulated phones, clones
    with a blank serial), and picking the first would be a silent guess, so that is refused
    with both addresses. Returns the device, or the candidates that refused us
    (unauthorized: serial unknown). Probing waits only briefly for authorization.
    """
    refused: list[DeviceSummary] = []
    found: list[tuple[DeviceSummary, Device]] = []
    for candidate in candidates:
        try:
            device = open_summary(candidate, auth_timeout=min(auth_timeout, 3.0))
        except DeviceUnauthorizedError:
            refused.append(candidate)
            continue
        except DeviceError:
            continue
        try:
            if device.getprop("ro.serialno") == serial:
                found.append((candidate, device))
                continue
        except DeviceError:
            pass
        device.close()
    if len(found) > 1:
        for _, device in found:
            device.close()
        raise SeveralDevicesError(
            f"{len(found)} phones call themselves {serial!r}: "
            + ", ".join(c.serial for c, _ in found),
            hint="Choose one by its address: -s " + found[0][0].serial,
        )
    if found:
        return found[0][1]
    return refused


def _no_device_hint(transport: str) -> str:

    hint = _E.default_hint or ""
    if transport != "server" and _usb_serials() is None:
        hint += " USB phones need: pip install 'qwenchat[usb]'."
    return hint
