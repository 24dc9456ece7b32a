"""Which service an OPEN asks for, and running it."""

from __future__ import annotations

from qwenchat.emulator.adbd.shell import parse_shell_service, run_shell
from qwenchat.emulator.adbd.stream import Stream, StreamClosed
from qwenchat.emulator.adbd.sync import run_sync

# Services a phone has that the emulator answers with a refusal rather than silence.
REFUSED = ("reboot:", "remount:", "root:", "unroot:", "tcpip:", "usb:", "disable-verity:",
           "enable-verity:", "sideload:", "backup:", "restore:")  # fmt: skip


def open_service(ctx, stream: Stream) -> bool:
    """Run the stream's service to its end; False if the service is unknown (OPEN refused)."""
    service = stream.service
    if service == "sync:":
        run_sync(stream)
        return True
    request = parse_shell_service(service)
    if request is not None and request.v2 and not ctx.config.shell_v2:
        return False  # an adbd before shell protocol v2 does not know the service
    if request is not None:
        run_shell(stream, request)
        return True
    if service.startswith(REFUSED):
        stream.conn.okay_open(stream)
        name = service.split(":", 1)[0]
        try:
            stream.write(f"{name}: not available on the SIMULATED phone\n".encode())
        except StreamClosed:
            pass
        return True
    return False
