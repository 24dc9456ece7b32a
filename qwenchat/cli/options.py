"""Options shared by every command that talks to a phone."""

from __future__ import annotations

from typing import Annotated

import typer

from qwenchat.cli import checked
from qwenchat.layout import DEFAULT_WORK_DIR

Serial = Annotated[
    str | None,
    typer.Option(
        "-s",
        "--serial",
        envvar="ANDROID_SERIAL",
        help="Phone to use: a serial or HOST:PORT (default: the only one attached).",
        show_envvar=True,
    ),
]
# Commands that can work on several phones at once (devices, push-assets, bench, doctor).
Serials = Annotated[
    list[str] | None,
    typer.Option(
        "-s",
        "--serial",
        envvar="ANDROID_SERIAL",
        help="Phone to use: a serial, HOST:PORT, or SERIAL@SERVER for another computer's "
        "adb server's phone (`qwenchat devices` names them). Repeat it for several.",
        show_envvar=True,
    ),
]
AllPhones = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Every phone qwenchat can reach: this computer's, the remembered TCP phones "
        "and those of every --adb-server (and remembered one), each its own worker.",
    ),
]
AdbServers = Annotated[
    list[str] | None,
    typer.Option(
        "--adb-server",
        help="Also reach the phones of Google's adb server at HOST:PORT (another "
        "computer's `adb -a`, a device farm). Repeatable; `qwenchat connect --adb-server` "
        "remembers one.",
    ),
]
Connect = Annotated[
    str | None,
    typer.Option("--connect", help="Reach a TCP phone at HOST:PORT (`adb tcpip` or the emulator).",
                 callback=checked.endpoint),
]
Transport = Annotated[
    str,
    typer.Option(
        "--transport",
        help="auto: Google's adb server when it holds the phone, else direct (adb-shell).",
        case_sensitive=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model: qwen2-7b-instruct, ... (`qwenchat models`). Default: the one on the phone.",
    ),
]
DeviceDir = Annotated[
    str,
    typer.Option("--device-dir", help="qwenchat's work dir on the phone.", show_default=True,
                 callback=checked.phone_path),
]
__all__ = [
    "DEFAULT_WORK_DIR",
    "AdbServers",
    "AllPhones",
    "Connect",
    "DeviceDir",
    "Json",
    "Model",
    "Serial",
    "Serials",
    "Transport",
]


def wants_fleet(serials: list[str] | None, all_phones: bool, adb_servers: list[str] | None) -> bool:
    """Whether a command means several phones (or another computer's): then it resolves a
    phone set (``qwenchat.device.phoneset``), else it opens the one phone as it always did."""
    return all_phones or len(serials or []) > 1 or bool(adb_servers) or any(
        "@" in s for s in serials or []
    )


def one_serial(serials: list[str] | None) -> str | None:
    return serials[0] if serials else None
