"""`qwenchat emulator start | stop | status | authorize | make-bundle`: the SIMULATED phone.

The emulator is a device-side ADB server on 127.0.0.1 (``qwenchat.emulator``); ``start``
runs it as a detached background process that writes ``state/emulator.json`` once it
listens, and the other commands find it through that file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli.options import Json

DEFAULT_PORT = 5557
SIMULATED_LINE = "SIMULATED phone — not a real device"

Root = Annotated[
    Path | None,
    typer.Option("--root", help="The emulator's folder (default: <data dir>/emulator)."),
]

emulator_app = typer.Typer(
    name="emulator",
    help="A SIMULATED phone on 127.0.0.1 to try qwenchat without hardware.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    if importlib.util.find_spec("qwenchat.emulator.bundle") is not None:
        emulator_app.command("make-bundle")(make_bundle_cmd)
    app.add_typer(emulator_app)


def _root(root: Path | None) -> Path:
    if root is not None:
        return root.expanduser().resolve()
    from qwenchat.paths import data_dir

    return data_dir() / "emulator"


def _console():  # noqa: ANN202
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _check_port_free(port: int) -> None:
    import socket

    from qwenchat.errors import UsageError

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on 127.0.0.1 is in use",
                "Pass --port 0 to pick a free port, or stop what listens there "
                "(`qwenchat emulator stop`).",
            ) from exc


def _usage_lines(address: str) -> list[str]:
    return [
        f"use it:  qwenchat devices --connect {address}   (any phone command takes --connect)",
        f"     or: adb connect {address}",
    ]


@emulator_app.command("start")
def start(
    port: Annotated[
        int, typer.Option("--port", help="Loopback port (0: any free port).")
    ] = DEFAULT_PORT,
    root: Root = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Skip RSA auth (like ro.adb.secure=0).")
    ] = False,
    accept_new_keys: Annotated[
        bool,
        typer.Option("--accept-new-keys", help='Accept any new key at once ("always allow").'),
    ] = False,
    soc: Annotated[str, typer.Option("--soc", help="SoC the phone reports.")] = "SM8750",
    free_mb: Annotated[int, typer.Option("--free-mb", help="Free space of /data, MiB.")] = 65536,
    link: Annotated[
        str, typer.Option("--link", help="Cable speed: usb2 (~40 MB/s), usb3 (~120), unlimited.")
    ] = "unlimited",
    time_scale: Annotated[
        float, typer.Option("--time-scale", help="Simulated genie time factor (0.1 = 10x faster).")
    ] = 1.0,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Device profile JSON for the simulated genie.")
    ] = None,
    no_jitter: Annotated[
        bool, typer.Option("--no-jitter", help="Deterministic simulated timings.")
    ] = False,
    drop_after_bytes: Annotated[
        int | None,
        typer.Option("--drop-after-bytes", help="Drop each connection after N bytes (tests)."),
    ] = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this terminal until Ctrl-C.")
    ] = False,
) -> int:
    """Start the SIMULATED phone (a device-side ADB server on 127.0.0.1)."""
    import json
    import os
    import subprocess
    import sys
    import time

    from qwenchat.emulator.config import LINK_SPEEDS_BPS, EmulatorConfig
    from qwenchat.emulator.server import read_state, state_path
    from qwenchat.errors import UsageError

    base = _root(root)
    if link not in LINK_SPEEDS_BPS:
        raise UsageError(f"unknown link {link!r}", f"Choose one of {', '.join(LINK_SPEEDS_BPS)}.")
    if time_scale <= 0:
        raise UsageError("--time-scale must be above 0", "For example --time-scale 0.1.")
    if free_mb < 0 or port < 0 or port > 65535:
        raise UsageError("--free-mb and --port must be positive", None)
    if profile is not None and not profile.is_file():
        raise UsageError(f"profile {profile} does not exist", "Pass a device profile JSON file.")
    running = read_state(base)  # also clears a stale emulator.json (dead pid)
    if running is not None:
        raise UsageError(
            f"a SIMULATED phone already runs from {base} at {running['address']}",
            "Stop it first with `qwenchat emulator stop` (or pass another --root).",
        )
    config = EmulatorConfig(
        root=base,
        soc=soc,
        free_mb=free_mb,
        link=link,
        time_scale=time_scale,
        auth=not no_auth,
        accept_new_keys=accept_new_keys,
        drop_after_bytes=drop_after_bytes,
        genie_profile=profile.resolve() if profile else None,
        jitter=not no_jitter,
    )
    config.save()
    if port:
        _check_port_free(port)
    console = _console()

    def announce(address: str, serial: str) -> None:
        console.print(f"[bold]{SIMULATED_LINE}[/]")
        console.print(f"listening on {address}  serial {serial}  soc {soc} (SIMULATED)")
        console.print(f"link {link}, time scale {time_scale}, auth {'off' if no_auth else 'on'}")
        for line in _usage_lines(address):
            console.print(line)

    if foreground:
        from qwenchat.emulator.server import run_daemon

        def ready(server) -> None:  # noqa: ANN001
            announce(server.address, server.serial)
            console.print("Ctrl-C stops it.")

        return run_daemon(base, port, on_ready=ready)

    log_path = config.state_dir / "emulator.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qwenchat.emulator.server",
                "--root",
                str(base),
                "--port",
                str(port),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # survives this terminal
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            state = json.loads(state_path(base).read_text())
            if state.get("pid") == proc.pid:
                announce(state["address"], state["serial"])
                console.print(f"stop it with: qwenchat emulator stop --root {base}")
                return 0
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise UsageError(
                "the SIMULATED phone did not start: " + (" / ".join(tail) or "no output"),
                f"See {log_path}.",
            )
        time.sleep(0.05)
    proc.terminate()
    raise UsageError("the SIMULATED phone did not start within 20 s", f"See {log_path}.")


@emulator_app.command("stop")
def stop(root: Root = None) -> int:
    """Stop the SIMULATED phone started from this root."""
    import os
    import signal
    import time

    from qwenchat.emulator.server import pid_alive, read_state, state_path

    base = _root(root)
    state = read_state(base)
    console = _console()
    if state is None:
        console.print(f"no SIMULATED phone runs from {base}")
        return 0
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    state_path(base).unlink(missing_ok=True)
    console.print(f"stopped the SIMULATED phone at {state['address']}")
    return 0


@emulator_app.command("status")
def status(root: Root = None, json_output: Json = False) -> int:
    """Whether the SIMULATED phone runs, where, and with which settings."""
    import json

    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import read_state

    base = _root(root)
    state = read_state(base)
    info: dict = {"simulated": True, "running": state is not None, "root": str(base)}
    if state is not None:
        info.update(address=state["address"], port=state["port"], serial=state["serial"],
                    pid=state["pid"])  # fmt: skip
    try:
        config = EmulatorConfig.load(base)
        info.update(soc=config.soc, time_scale=config.time_scale, link=config.link,
                    auth=config.auth, free_mb=config.free_mb)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if json_output:
        typer.echo(json.dumps(info, indent=2))
        return 0 if state is not None else 1
    console = _console()
    if state is None:
        console.print(f"SIMULATED phone: not running (root {base})")
        return 1
    console.print(f"SIMULATED phone: running at {info['address']}  serial {info['serial']}")
    if "soc" in info:
        console.print(
            f"soc {info['soc']}, time scale {info['time_scale']}, link {info['link']}, "
            f"auth {'on' if info['auth'] else 'off'}, free {info['free_mb']} MiB"
        )
    return 0


@emulator_app.command("authorize")
def authorize(root: Root = None) -> int:
    """Accept the keys waiting on the SIMULATED phone ("Allow USB debugging?" → always allow)."""
    from qwenchat.emulator.server import authorize_pending

    console = _console()
    accepted = authorize_pending(_root(root))
    if not accepted:
        console.print("no key is waiting on the SIMULATED phone")
        return 0
    for line in accepted:
        blob, _, comment = line.partition(" ")
        console.print(f"authorized {comment or '(no name)'}  {blob[:16]}…")
    return 0


def make_bundle_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Where to write the SDK and the bundle.")],
    bin_size: Annotated[
        float, typer.Option("--bin-size", help="Size of each context binary, MB.")
    ] = 8.0,
    arch: Annotated[str, typer.Option("--arch", help="Hexagon arch (v73, v75, v79).")] = "v79",
) -> int:
    """Write a SIMULATED QAIRT SDK and Genie bundle for the emulated phone."""
    from qwenchat.emulator.bundle import make_bundle

    paths = make_bundle(out_dir, bin_size_mb=bin_size, arch=arch)
    console = _console()
    console.print(f"SIMULATED QAIRT SDK: {paths.qairt}")
    console.print(
        f"SIMULATED Genie bundle: {paths.bundle} ({len(paths.ctx_bins)} context binaries)"
    )
    return 0
