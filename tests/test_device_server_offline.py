"""Issue 31, item 4 (second half): a phone that is back while the adb server still lists it
"offline" is reached, not reported missing.

After a phone drops and returns, Google's adb server keeps it "offline" until its own next
reconnect attempt; qwenchat said "no phone found (…, offline)" although the phone answered on
its port, where the direct transport reaches it at once. Failure modes:
- the server lists the phone offline, the phone answers: open it directly (auto transport),
  whether it is named with -s, --connect, or is the only phone;
- the server lists it offline and nothing answers on its port: still "no phone found" naming
  it as offline (never a guess);
- `--transport server` asks for the server alone: its word stands.

The adb server here is a real loopback socket speaking adb's host protocol (``host:devices``
and ``host:devices-l``) whose answer the test writes by hand, so the "offline" window is not a
race; the phone is the emulated one (a real adbd on loopback).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from qwenchat.device.select import open_device
from qwenchat.errors import NoDeviceError


class _Listing(socketserver.BaseRequestHandler):
    listing = ""

    def handle(self) -> None:
        length = int(self.request.recv(4), 16)
        service = b""
        while len(service) < length:
            service += self.request.recv(length - len(service))
        if service.startswith(b"host:devices"):
            body = self.server.listing.encode()  # type: ignore[attr-defined]
            self.request.sendall(b"OKAY" + b"%04x" % len(body) + body)
        else:
            self.request.sendall(b"FAIL0007unknown")


@pytest.fixture
def adb_server_listing(monkeypatch) -> Iterator[socketserver.TCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Listing)
    server.daemon_threads = True
    server.listing = ""  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ANDROID_ADB_SERVER_HOST", "127.0.0.1")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.server_address[1]))
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["serial", "connect", "only"])
def test_a_phone_the_server_lists_offline_but_that_answers_is_reached(
    emulator, adb_server_listing, how
):
    adb_server_listing.listing = f"{emulator.address}\toffline\n"
    kwargs = {"serial": {"serial": emulator.address}, "connect": {"connect": emulator.address},
              "only": {}}[how]  # fmt: skip
    device = open_device(transport="auto", **kwargs)
    try:
        assert device.getprop("ro.serialno") == emulator.serial
        assert device.transport_name == "direct"
    finally:
        device.close()


def test_an_offline_phone_that_does_not_answer_is_still_no_phone(adb_server_listing):
    gone = f"127.0.0.1:{_closed_port()}"
    adb_server_listing.listing = f"{gone}\toffline\n"
    with pytest.raises(NoDeviceError) as caught:
        open_device(transport="auto")
    assert caught.value.message == f"no phone found ({gone} (server, offline))"


def test_transport_server_keeps_the_servers_word(emulator, adb_server_listing):
    adb_server_listing.listing = f"{emulator.address}\toffline\n"
    with pytest.raises(NoDeviceError) as caught:
        open_device(serial=emulator.address, transport="server")
    assert "offline" in caught.value.message
