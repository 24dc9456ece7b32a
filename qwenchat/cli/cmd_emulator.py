"""`qwenchat emulator start | stop | status | authorize | log | fault | make-bundle`: the
SIMULATED phone.

The emulator is a device-side ADB server on 127.0.0.1 in front of a sandboxed phone
(``qwenchat.emulator``); ``start`` runs it as a background daemon
(``qwenchat.emulator.daemon``), the other commands find it through its root folder. Each
command here only parses options, calls the emulator package and renders.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli import checked
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


def _check_folder(target: Path, what: str) -> None:
    """A folder that is (or can be made) there: a file in the way, or a parent that cannot
    be written, is one line, not a traceback."""
    from qwenchat.errors import UsageError

    for parent in (target, *target.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{what} {target}: {parent} is a file, not a folder",
                                 "Give a folder (it is created).")
            if parent != target and not os.access(parent, os.W_OK):
                raise UsageError(f"{what} {target}: {parent} is not writable")
            return


@emulator_app.command("start")
def start(
    port: Annotated[
        int,
        typer.Option("--port", help="Loopback port (0: any free port); with --count N, the first.",
                     callback=checked.whole(0, 65535)),
    ] = DEFAULT_PORT,
    root: Root = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Skip RSA auth (like ro.adb.secure=0).")
    ] = False,
    accept_new_keys: Annotated[
        bool,
        typer.Option("--accept-new-keys", help='Accept any new key at once ("always allow").'),
    ] = False,
    soc: Annotated[
        list[str] | None,
        typer.Option("--soc", help="SoC the phone reports; repeat it with --count (taken in turn)."),
    ] = None,
    free_mb: Annotated[
        int, typer.Option("--free-mb", help="Size of the phone's /data (free when empty), MiB.",
                          callback=checked.whole(1, None))
    ] = 65536,
    link: Annotated[
        list[str] | None,
        typer.Option(
            "--link",
            help="Cable speed: usb2 (~40 MB/s), usb3 (~120), unlimited (default); repeat it "
            "with --count (taken in turn).",
        ),
    ] = None,
    time_scale: Annotated[
        float, typer.Option("--time-scale", help="Simulated genie time factor (0.1 = 10x faster).",
                            callback=checked.number(above=0, high=1000))
    ] = 1.0,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Device profile JSON for the simulated genie.")
    ] = None,
    no_jitter: Annotated[
        bool, typer.Option("--no-jitter", help="Deterministic simulated timings.")
    ] = False,
    drop_after_bytes: Annotated[
        int | None,
        typer.Option("--drop-after-bytes", help="Drop each connection after N bytes (tests).",
                     callback=checked.whole(1, None)),
    ] = None,
    serial: Annotated[
        str | None,
        typer.Option(
            "--serial",
            help="The serial it reports (default: its own, new for a new root, kept after); "
            "with --count N, phones get SERIAL-1 ... SERIAL-N.",
        ),
    ] = None,
    count: Annotated[
        int,
        typer.Option(
            "--count", help="Start N phones, each in ROOT/phone-I with its own serial.", min=1
        ),
    ] = 1,
    behind_adb_server: Annotated[
        int | None,
        typer.Option(
            "--behind-adb-server",
            help="Hold the phones in Google's adb server on this loopback port (started if "
            "needed), like another computer's: reach them with --adb-server 127.0.0.1:PORT.",
        ),
    ] = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this terminal until Ctrl-C.")
    ] = False,
) -> int:
    """Start the SIMULATED phone (a device-side ADB server on 127.0.0.1), or --count N."""
    from qwenchat.emulator import EmulatorError
    from qwenchat.emulator.config import LINK_SPEEDS_BPS, EmulatorConfig
    from qwenchat.emulator.daemon import run_daemon, start_daemon
    from qwenchat.errors import UsageError

    base = _root(root)
    _check_folder(base, "--root")
    socs = soc or ["SM8750"]
    links = link or ["unlimited"]
    for name in links:
        if name not in LINK_SPEEDS_BPS:
            raise UsageError(f"unknown link {name!r}", f"Choose one of {', '.join(LINK_SPEEDS_BPS)}.")
    if port and port + count - 1 > 65535:
        raise UsageError(f"--port {port} with --count {count} goes past port 65535",
                         "Give a lower --port, or --port 0 for free ports.")  # fmt: skip
    if count == 1 and (len(socs) > 1 or len(links) > 1):
        raise UsageError("several --soc or --link values need --count", "e.g. --count 2 "
                         "--soc SM8750 --soc SM8650")  # fmt: skip
    if foreground and (count > 1 or behind_adb_server is not None):
        raise UsageError("--foreground runs one phone", "Drop --count / --behind-adb-server.")
    if behind_adb_server is not None and not 0 < behind_adb_server < 65536:
        raise UsageError(f"--behind-adb-server {behind_adb_server}: give a port within 1-65535")
    if profile is not None:
        _check_profile(profile)
    console = _console()
    configs = []
    for i in range(count):
        phone_root = base if count == 1 else base / f"phone-{i + 1}"
        config = EmulatorConfig(
            root=phone_root, soc=socs[i % len(socs)], free_mb=free_mb,
            link=links[i % len(links)], time_scale=time_scale,
            auth=not no_auth, accept_new_keys=accept_new_keys, drop_after_bytes=drop_after_bytes,
            genie_profile=profile.resolve() if profile else None, jitter=not no_jitter,
        )  # fmt: skip
        # A phone keeps its serial across restarts, as a real one does.
        config.serial = _serial_for(phone_root, serial, i if count > 1 else None) or config.serial
        configs.append(config)

    def announce(config, address: str, serial: str, enforced: bool | None) -> None:  # noqa: ANN001
        console.print(f"[bold]{SIMULATED_LINE}[/]")
        console.print(f"listening on {address}  serial {serial}  soc {config.soc} (SIMULATED)")
        console.print(f"link {config.link}, time scale {time_scale}, "
                      f"auth {'off' if no_auth else 'on'}")  # fmt: skip
        if enforced is False:
            from qwenchat.emulator.storage import loop_unavailable_reason

            console.print(f"/data is NOT limited to {free_mb} MiB: {loop_unavailable_reason()}")
        if behind_adb_server is not None:
            return
        console.print(f"remembered like `qwenchat connect {address}`: phone commands find it "
                      "without --connect")  # fmt: skip
        console.print(f"     or: adb connect {address}")

    try:
        if foreground:
            config = configs[0]
            config.save()

            def ready(server) -> None:  # noqa: ANN001
                announce(config, server.address, server.serial, server.phone.storage.enforced)
                console.print("Ctrl-C stops it.")

            return run_daemon(base, port, on_ready=ready)
        started = []
        for i, config in enumerate(configs):
            started.append((config, start_daemon(config, port + i if port else 0)))
    except EmulatorError as exc:
        raise _product_error(exc) from None
    from qwenchat.emulator.storage import loop_unavailable_reason

    enforced = loop_unavailable_reason() is None
    for config, running in started:
        if behind_adb_server is None:
            _remember(running.address)
        announce(config, running.address, running.serial, enforced)
    if behind_adb_server is not None:
        from qwenchat.emulator.front import hold_in_adb_server

        try:
            hold_in_adb_server(behind_adb_server, [r.address for _, r in started],
                               [c.root for c, _ in started])  # fmt: skip
        except EmulatorError as exc:
            raise _product_error(exc) from None
        console.print(f"held by Google's adb server on 127.0.0.1:{behind_adb_server}: reach "
                      f"them with --adb-server 127.0.0.1:{behind_adb_server}")  # fmt: skip
    console.print(f"stop {'it' if count == 1 else 'them'} with: qwenchat emulator stop --root {base}")
    return 0


def _serial_for(root: Path, serial: str | None, index: int | None) -> str | None:
    """--serial (SERIAL-I for the I-th of several), else the serial this root's phone had."""
    if serial is not None:
        from qwenchat.errors import UsageError

        if not serial.strip() or any(c.isspace() or not c.isprintable() for c in serial):
            raise UsageError(f"--serial {serial!r}: give letters, digits, - or _ (no spaces)")
        return serial if index is None else f"{serial}-{index + 1}"
    from qwenchat.emulator.config import EmulatorConfig

    try:
        return EmulatorConfig.load(root).serial
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _phone_roots(base: Path) -> list[Path]:
    """The root itself, and the phones `start --count` put in ROOT/phone-I."""
    children = sorted(base.glob("phone-*"), key=lambda p: (len(p.name), p.name))
    return [base, *[p for p in children if (p / "state").is_dir()]]


@emulator_app.command("stop")
def stop(root: Root = None) -> int:
    """Stop the SIMULATED phone started from this root (and those `--count` put under it)."""
    from qwenchat.emulator.daemon import stop_daemon
    from qwenchat.emulator.front import release_from_adb_server

    base = _root(root)
    console = _console()
    any_stopped = False
    for phone_root in _phone_roots(base):
        stopped = stop_daemon(phone_root)
        if stopped is None:
            continue
        any_stopped = True
        release_from_adb_server(phone_root, stopped.address)
        _forget(stopped.address)
        console.print(f"stopped the SIMULATED phone at {stopped.address}")
    if not any_stopped:
        console.print(f"no SIMULATED phone runs from {base}")
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
    """Whether the SIMULATED phone runs, where, and with which settings (and the phones
    `start --count` put under the root)."""
    import json

    base = _root(root)
    roots = [r for r in _phone_roots(base) if r == base or (r / "state").is_dir()]
    infos = [_status_of(r) for r in roots]
    if len(infos) > 1 and not infos[0]["running"] and not (base / "state").is_dir():
        infos = infos[1:]  # ROOT only holds the --count phones
    if json_output:
        typer.echo(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2))
        return 0 if any(i["running"] for i in infos) else 1
    console = _console()
    for info in infos:
        if not info["running"]:
            console.print(f"SIMULATED phone: not running (root {info['root']})")
            continue
        console.print(f"SIMULATED phone: running at {info['address']}  serial {info['serial']}")
        if "soc" in info:
            console.print(
                f"soc {info['soc']}, time scale {info['time_scale']}, link {info['link']}, "
                f"auth {'on' if info['auth'] else 'off'}, /data {info['free_mb']} MiB"
            )
            if info["faults"]:
                console.print("faults: " + ", ".join(info["faults"]))
    return 0 if any(i["running"] for i in infos) else 1


def _status_of(base: Path) -> dict:
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.daemon import read_state
    from qwenchat.emulator.faults import active

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
    return info


@emulator_app.command("authorize")
def authorize(root: Root = None) -> int:
    """Accept the keys waiting on the SIMULATED phone ("Allow USB debugging?" → always allow)."""
    from qwenchat.emulator.server import authorize_pending
    from qwenchat.errors import UsageError

    console = _console()
    base = _root(root)
    if not (base / "state").is_dir():  # every phone started there has its state folder
        raise UsageError(f"no emulated phone at {base}", "Start one: qwenchat emulator start.")
    accepted = authorize_pending(base)
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
    _check_folder(out_dir.expanduser(), "make-bundle")
    try:
        paths = make_bundle(out_dir, bin_size_mb=bin_size, arch=arch, model=model)
    except OSError as exc:
        raise UsageError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
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
