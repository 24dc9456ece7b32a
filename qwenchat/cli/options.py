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
__all__ = ["DEFAULT_WORK_DIR", "Connect", "DeviceDir", "Json", "Model", "Serial", "Transport"]
