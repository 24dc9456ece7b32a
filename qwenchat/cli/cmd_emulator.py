"""`qwenchat emulator start | stop | status | authorize | log | fault | make-bundle`: the
SIMULATED phone.

The emulator is a device-side ADB server on 127.0.0.1 in front of a sandboxed phone
(``qwenchat.emulator``); ``start`` runs it as a background daemon
(``qwenchat.emulator.daemon``), the other commands find it through its root folder. Each
command here only parses options, calls the emulator package and renders.
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


def _product_error(exc: Exception) -> Exception:
    """The emulator's own error as qwenchat's (one line, a hint, exit 2 for usage)."""
    from qwenchat.errors import QwenchatError, UsageError

    kind = UsageError if getattr(exc, "usage", False) else QwenchatError
    return kind(getattr(exc, "message", str(exc)), getattr(exc, "hint", None))


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
    free_mb: Annotated[
        int, typer.Option("--free-mb", help="Size of the phone's /data (free when empty), MiB.")
    ] = 65536,
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
    from qwenchat.emulator import EmulatorError
    from qwenchat.emulator.config import LINK_SPEEDS_BPS, EmulatorConfig
    from qwenchat.emulator.daemon import run_daemon, start_daemon
    from qwenchat.errors import UsageError

    base = _root(root)
    if link not in LINK_SPEEDS_BPS:
        raise UsageError(f"unknown link {link!r}", f"Choose one of {', '.join(LINK_SPEEDS_BPS)}.")
    if time_scale <= 0:
        raise UsageError("--time-scale must be above 0", "For example --time-scale 0.1.")
    if free_mb < 1 or port < 0 or port > 65535:
        raise UsageError("--free-mb must be at least 1 and --port within 0-65535", None)
    if profile is not None:
        _check_profile(profile)
    config = EmulatorConfig(
        root=base, soc=soc, free_mb=free_mb, link=link, time_scale=time_scale,
        auth=not no_auth, accept_new_keys=accept_new_keys, drop_after_bytes=drop_after_bytes,
        genie_profile=profile.resolve() if profile else None, jitter=not no_jitter,
    )  # fmt: skip
    console = _console()

    def announce(address: str, serial: str, enforced: bool | None) -> None:
        console.print(f"[bold]{SIMULATED_LINE}[/]")
        console.print(f"listening on {address}  serial {serial}  soc {soc} (SIMULATED)")
        console.print(f"link {link}, time scale {time_scale}, auth {'off' if no_auth else 'on'}")
        if enforced is False:
            from qwenchat.emulator.storage import loop_unavailable_reason

            console.print(f"/data is NOT limited to {free_mb} MiB: {loop_unavailable_reason()}")
        console.print(f"remembered like `qwenchat connect {address}`: phone commands find it "
                      "without --connect")  # fmt: skip
        console.print(f"     or: adb connect {address}")

    try:
        if foreground:
            config.save()

            def ready(server) -> None:  # noqa: ANN001
                announce(server.address, server.serial, server.phone.storage.enforced)
                console.print("Ctrl-C stops it.")

            return run_daemon(base, port, on_ready=ready)
        running = start_daemon(config, port)
    except EmulatorError as exc:
        raise _product_error(exc) from None
    from qwenchat.emulator.storage import loop_unavailable_reason

    _remember(running.address)

    announce(running.address, running.serial, loop_unavailable_reason() is None)
    console.print(f"stop it with: qwenchat emulator stop --root {base}")
    return 0


@emulator_app.command("stop")
def stop(root: Root = None) -> int:
    """Stop the SIMULATED phone started from this root."""
    from qwenchat.emulator.daemon import stop_daemon

    base = _root(root)
    stopped = stop_daemon(base)
    console = _console()
    if stopped is None:
        console.print(f"no SIMULATED phone runs from {base}")
    else:
        _forget(stopped.address)
        console.print(f"stopped the SIMULATED phone at {stopped.address}")
    return 0


def _remember(address: str) -> None:
    """As Google's adb remembers `adb connect`: later phone commands need no --connect."""
    from qwenchat.device.endpoints import parse_endpoint, remember

    remember(parse_endpoint(address))


def _forget(address: str) -> None:
    from qwenchat.device.endpoints import forget, parse_endpoint

    forget(parse_endpoint(address))


@emulator_app.command("status")
def status(root: Root = None, json_output: Json = False) -> int:
    """Whether the SIMULATED phone runs, where, and with which settings."""
    import json

    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.daemon import read_state
    from qwenchat.emulator.faults import active

    base = _root(root)
    running = read_state(base)
    info: dict = {"simulated": True, "running": running is not None, "root": str(base)}
    if running is not None:
        info.update(address=running.address, port=running.port, serial=running.serial,
                    pid=running.pid)  # fmt: skip
    try:
        config = EmulatorConfig.load(base)
        info.update(soc=config.soc, time_scale=config.time_scale, link=config.link,
                    auth=config.auth, free_mb=config.free_mb,
                    faults=[f"{n} {v}".strip() for n, v in active(config)])  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if json_output:
        typer.echo(json.dumps(info, indent=2))
        return 0 if running is not None else 1
    console = _console()
    if running is None:
        console.print(f"SIMULATED phone: not running (root {base})")
        return 1
    console.print(f"SIMULATED phone: running at {info['address']}  serial {info['serial']}")
    if "soc" in info:
        console.print(
            f"soc {info['soc']}, time scale {info['time_scale']}, link {info['link']}, "
            f"auth {'on' if info['auth'] else 'off'}, /data {info['free_mb']} MiB"
        )
        if info["faults"]:
            console.print("faults: " + ", ".join(info["faults"]))
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


@emulator_app.command("log")
def log_cmd(
    root: Root = None,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", help="Only the last N records.", min=1)
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records until Ctrl-C.")
    ] = False,
    json_output: Json = False,
) -> int:
    """What the SIMULATED phone was asked: every shell/exec command and sync request."""
    import json
    import signal

    from qwenchat.emulator.commandlog import follow as follow_log
    from qwenchat.emulator.commandlog import format_record, log_path, read_records
    from qwenchat.errors import UsageError
    from qwenchat.signals import Terminated

    if follow:
        # Ctrl-C must end it even when it was started with SIGINT ignored (a background job
        # of a script, a test harness): Python then leaves SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    base = _root(root)
    if not (base / "state").is_dir():
        raise UsageError(f"no emulated phone in {base}", "Start one: `qwenchat emulator start`.")

    def show(record: dict) -> None:
        typer.echo(json.dumps(record) if json_output else format_record(record))

    try:
        records = read_records(base, tail)
        for record in records:
            show(record)
        if not records and not follow and not json_output:
            typer.echo(f"(nothing logged yet in {log_path(base)})", err=True)
        if follow:
            for record in follow_log(base):
                show(record)
    except KeyboardInterrupt as exc:
        if not follow:
            raise
        if isinstance(exc, Terminated):  # SIGTERM/SIGHUP: the shell's 128 + N, said once
            typer.echo(f"stopped ({exc})", err=True)
            return exc.exit_code
    return 0  # Ctrl-C is how --follow ends


@emulator_app.command("fault")
def fault(
    name: Annotated[
        str, typer.Argument(help="A fault switch, or `list` or `clear`.", metavar="NAME")
    ],
    value: Annotated[
        str | None, typer.Argument(help="Its value (N bytes, N tokens, a command).")
    ] = None,
    root: Root = None,
) -> int:
    """Switch a fault of the running SIMULATED phone on at once (`list`, `clear [NAME]`).

    drop-after-bytes N, corrupt-bytes N, fail-command CMD, genie-crash-after N,
    genie-hang-before-first-token, genie-fail-load.
    """
    from qwenchat.emulator import faults

    base = _root(root)
    console = _console()
    try:
        if name == "list":
            if value is not None:
                raise faults.FaultError("`fault list` takes no value")
            on = faults.list_faults(base)
            for fault_name, fault_value in on:
                console.print(f"{fault_name} {fault_value}".strip())
            if not on:
                console.print("no fault is on")
            for switch in faults.SWITCHES.values():
                console.print(f"  [dim]{switch.name} {switch.value}".rstrip() +
                              f" — {switch.help}[/]")  # fmt: skip
            return 0
        if name == "clear":
            cleared = faults.clear_faults(base, value)
            console.print("cleared: " + (", ".join(cleared) if cleared else "nothing was on"))
            return 0
        console.print("on: " + faults.set_fault(base, name, value) + " (SIMULATED phone)")
    except faults.FaultError as exc:
        raise _product_error(exc) from None
    return 0


def make_bundle_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Where to write the SDK and the bundle.")],
    bin_size: Annotated[
        float, typer.Option("--bin-size", help="Size of each context binary, MB.")
    ] = 8.0,
    arch: Annotated[str, typer.Option("--arch", help="Hexagon arch (v73, v75, v79).")] = "v79",
    model: Annotated[
        str, typer.Option("--model", "-m", help="Shape the bundle as this model's export.")
    ] = "qwen2-7b-instruct",
) -> int:
    """Write a SIMULATED QAIRT SDK and Genie bundle for the emulated phone."""
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.errors import UsageError

    if not 0 < bin_size <= 16384:
        raise UsageError(f"--bin-size {bin_size:g}: give a size in MB above 0 (and at most 16384)")
    if arch not in ("v73", "v75", "v79"):
        raise UsageError(f"--arch {arch}: the emulated phone knows v73, v75 and v79")

    from qwenchat.emulator.bundle import EXPORT_PARTS

    if model not in EXPORT_PARTS:
        raise UsageError(f"--model {model}: the emulated phone can shape {', '.join(EXPORT_PARTS)}")
    paths = make_bundle(out_dir, bin_size_mb=bin_size, arch=arch, model=model)
    console = _console()
    console.print(f"SIMULATED QAIRT SDK: {paths.qairt}")
    console.print(
        f"SIMULATED Genie bundle: {paths.bundle} ({len(paths.ctx_bins)} context binaries)"
    )
    return 0


def _check_profile(profile: Path) -> None:
    """A device profile is a JSON object of positive numbers (init_ms, prefill_chunk_ms,
    chunk_tokens, decode_tok_s, ...): anything else is refused before the phone starts."""
    import json

    from qwenchat.errors import UsageError

    hint = 'e.g. {"init_ms": 3000, "prefill_chunk_ms": 170.6, "decode_tok_s": 13.65}'
    if not profile.is_file():
        raise UsageError(f"--profile {profile} does not exist", hint=hint)
    try:
        data = json.loads(profile.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--profile {profile} is not a JSON device profile: {exc}", hint=hint) from None
    known = ("init_ms", "prefill_chunk_ms", "chunk_tokens", "decode_tok_s", "free_ms", "jitter_pct")
    if not isinstance(data, dict) or not any(k in data for k in (*known, "genie_app_build")):
        raise UsageError(
            f"--profile {profile} names none of {', '.join(known)}, genie_app_build", hint=hint
        )
    build = data.get("genie_app_build", "new")
    if build not in ("new", "old"):
        raise UsageError(f"--profile {profile}: genie_app_build must be \"new\" or \"old\", "
                         f"not {build!r}", hint=hint)  # fmt: skip
    for key in known:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value < 0 or (key != "jitter_pct" and value == 0 and key != "free_ms")):
            raise UsageError(f"--profile {profile}: {key} must be a positive number, not {value!r}",
                             hint=hint)
