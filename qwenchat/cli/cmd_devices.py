"""`qwenchat devices | connect | disconnect | doctor | clean`: the phones and their work dir."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli import checked
from qwenchat.cli.options import (
    DEFAULT_WORK_DIR,
    AdbServers,
    AllPhones,
    Connect,
    DeviceDir,
    Json,
    Model,
    Serial,
    Serials,
    Transport,
)

AuthTimeout = Annotated[
    float,
    typer.Option(
        "--auth-timeout",
        help='Seconds to wait for you to accept "Allow USB debugging?" on the phone.',
        callback=checked.number(above=0, high=3600, unit="seconds"),
    ),
]


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)
    app.command("connect")(connect_cmd)
    app.command("disconnect")(disconnect_cmd)
    app.command("doctor")(doctor)
    app.command("clean")(clean)


def _say_waiting(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[yellow]{escape(message)}[/]")


def _open(serial, connect, transport, auth_timeout):  # noqa: ANN001, ANN202
    from qwenchat.device.select import open_device

    return open_device(
        serial=serial,
        connect=connect,
        transport=transport,
        on_wait=_say_waiting,
        auth_timeout=auth_timeout,
    )


def devices(
    serials: Serials = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    auth_timeout: AuthTimeout = 30.0,
    adb_servers: AdbServers = None,
    json_output: Json = False,
) -> int:
    """Every phone qwenchat can reach, on every adb server: model, SoC, Hexagon arch,
    Android, RAM, free space, and where each is reached."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from qwenchat.device.info import read_device_info
    from qwenchat.device.phoneset import list_phones, open_phone
    from qwenchat.errors import DeviceError, DeviceUnauthorizedError

    listing = list_phones(adb_servers, connect=connect, transport=transport)
    phones = listing.phones
    wanted = [s for s in serials or [] if s]
    if wanted:
        picked = [p for p in phones if p.name in wanted or p.serial in wanted]
        phones = picked or phones  # else matched by ro.serialno below

    def describe(ref) -> dict:  # noqa: ANN001
        row: dict = {"address": ref.name, "server": ref.server, "transport": ref.transport,
                     "via": ref.via, "state": ref.state}  # fmt: skip
        if ref.usable:
            try:
                with open_phone(ref, on_wait=_say_waiting, auth_timeout=auth_timeout) as dev:
                    row.update(read_device_info(dev, device_dir).to_dict())
                    row["address"] = ref.name  # named by server and serial, not the bare serial
                    row["state"] = "device"
            except DeviceError as exc:
                unauthorized = isinstance(exc, DeviceUnauthorizedError)
                row["state"] = "unauthorized" if unauthorized else "error"
                row["error"] = exc.message
        return row

    # Each phone is asked on its own thread: a slow or dead one does not hold up the rest.
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(phones)))) as pool:
        described = list(pool.map(describe, phones))
    rows = [
        row for row in described
        if not wanted or row.get("serial") in (*wanted, None) or row["address"] in wanted
    ]  # fmt: skip
    problems = [{"server": p.server, "error": p.message} for p in listing.problems]
    if json_output:
        if problems:  # the listing stays a list of phones; unanswered servers go to stderr
            for problem in listing.problems:
                print(problem.message, file=sys.stderr)
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    _print_devices(rows)
    _print_problems(listing.problems)
    return 0


def _print_problems(problems) -> None:  # noqa: ANN001
    """One line per adb server that did not answer: the listing of the others stands."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    for problem in problems:
        console.print(f"[yellow]{escape(problem.message)}[/] [dim](its phones are not listed)[/]")


def _print_devices(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Never squeeze a phone's address or serial into an ellipsis: they are what -s takes.
    # Another server's phones are named SERIAL@HOST:PORT and reached via HOST:PORT: wider.
    remote = any(row.get("server") for row in rows)
    console = Console(highlight=False, width=max(Console().width, 170 if remote else 120))
    if not rows:
        console.print(
            "No phone found. [dim]Plug one in with USB debugging on, or "
            "`qwenchat connect HOST:PORT`.[/]"
        )
        return
    table = Table(title="Phones", title_justify="left")
    for column in ("address", "serial", "model", "SoC", "arch", "Android", "RAM", "free", "via"):
        table.add_column(column, no_wrap=column in ("address", "serial", "via"))
    any_simulated = False
    for row in rows:
        if row["state"] != "device" or "model" not in row:
            table.add_row(
                escape(row["address"]),
                "",
                f"[red]{escape(row['state'])}[/]",
                "",
                "",
                "",
                "",
                "",
                escape(row["via"]),
            )
            continue
        model = escape(row["model"])
        if row["simulated"]:
            any_simulated = True
            model = f"[bold yellow]{model}[/]"
            if "SIMULATED" not in row["model"]:
                model += " [yellow]SIMULATED[/]"
        table.add_row(
            escape(row["address"]),
            escape(row["serial"]),
            model,
            escape(row["soc"] or "?"),
            escape(row["hexagon_arch"] or "unsupported"),
            escape(row["android_version"]),
            f"{row['ram_mb'] / 1024:.0f} GB" if row["ram_mb"] else "?",
            f"{row['free_mb'] / 1024:.1f} GB" if row["free_mb"] is not None else "?",
            escape(row["via"]),
        )
    console.print(table)
    if any_simulated:
        console.print(
            "[yellow]SIMULATED: the emulated phone (qwenchat's own); its figures are not a "
            "real Snapdragon's.[/]"
        )


AdbServerArg = Annotated[
    str | None,
    typer.Option(
        "--adb-server",
        help="HOST:PORT of another computer's adb server (`adb -a`, a device farm) instead "
        "of a phone: its phones join --all and `qwenchat devices`.",
    ),
]


def _one_target(address: str | None, adb_server: str | None, verb: str) -> None:
    from qwenchat.errors import UsageError

    if (address is None) == (adb_server is None):
        raise UsageError(
            f"{verb} takes a phone's HOST:PORT or --adb-server HOST:PORT (one of them)",
            f"e.g. qwenchat {verb} 192.168.1.20:5555, or qwenchat {verb} --adb-server "
            "10.0.0.7:5037",
        )


def connect_cmd(
    address: Annotated[
        str | None, typer.Argument(help="HOST:PORT of a phone in `adb tcpip` mode.")
    ] = None,
    adb_server: AdbServerArg = None,
    transport: Transport = "auto",
    auth_timeout: AuthTimeout = 30.0,
) -> int:
    """Reach a TCP phone (or another computer's adb server) now and remember it."""
    from rich.console import Console

    from qwenchat.device.endpoints import parse_endpoint, remember
    from qwenchat.device.info import read_device_info

    _one_target(address, adb_server, "connect")
    if adb_server is not None:
        return _connect_server(adb_server)
    endpoint = parse_endpoint(address)
    with _open(None, endpoint.address, transport, auth_timeout) as dev:
        info = read_device_info(dev, DEFAULT_WORK_DIR)
    new = remember(endpoint)
    label = info.model + (
        " (SIMULATED)" if info.simulated and "SIMULATED" not in info.model else ""
    )
    Console(highlight=False).print(
        f"{'connected to' if new else 'already connected to'} {endpoint.address}: {label}"
    )
    return 0


def _connect_server(text: str) -> int:
    """Ask the server for its phones (it must answer), then remember it."""
    from rich.console import Console
    from rich.markup import escape

    from qwenchat.device.server import query_server
    from qwenchat.device.servers import parse_server, remember_server
    from qwenchat.errors import DeviceError

    server = parse_server(text)
    try:
        held = query_server((server.host, server.port))
    except DeviceError as exc:  # not answering: one line, nothing remembered
        raise DeviceError(
            exc.message,
            "Start it on that computer with `adb -a -P PORT nodaemon server`, and check "
            "that this computer can reach the port.",
        ) from None
    new = remember_server(server)
    phones = ", ".join(serial for serial, _ in held) or "no phone yet"
    Console(highlight=False).print(
        f"{'remembered' if new else 'already remembered'} adb server {server.address} "
        f"({escape(phones)})"
    )
    return 0


def disconnect_cmd(
    address: Annotated[
        str | None, typer.Argument(help="HOST:PORT given to `qwenchat connect`.")
    ] = None,
    adb_server: AdbServerArg = None,
) -> int:
    """Forget a TCP phone (or an adb server) remembered by `qwenchat connect`."""
    from qwenchat.device.endpoints import forget, load_endpoints, parse_endpoint
    from qwenchat.errors import UsageError

    _one_target(address, adb_server, "disconnect")
    if adb_server is not None:
        from qwenchat.device.servers import forget_server, load_servers, parse_server

        server = parse_server(adb_server)
        if not forget_server(server):
            known = ", ".join(s.address for s in load_servers()) or "none"
            raise UsageError(f"adb server {server.address} was not remembered (remembered: {known})")
        typer.echo(f"forgot adb server {server.address}")
        return 0
    endpoint = parse_endpoint(address)
    if not forget(endpoint):
        known = ", ".join(e.address for e in load_endpoints()) or "none"
        raise UsageError(f"{endpoint.address} was not connected (remembered: {known})")
    typer.echo(f"disconnected {endpoint.address}")
    return 0


def doctor(
    serials: Serials = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also verify SHA-256 of every file.")
    ] = False,
    auth_timeout: AuthTimeout = 30.0,
    model: Model = None,
    report_file: Annotated[
        str | None,
        typer.Option(
            "--report",
            help="Also write FILE: a report to attach to an issue (device build, versions, "
            "configs, one short Genie run; serials hashed, nothing from your chats).",
        ),
    ] = None,
    all_phones: AllPhones = False,
    adb_servers: AdbServers = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --report file if it exists.")
    ] = False,
    json_output: Json = False,
) -> int:
    """Check a phone step by step: reachable, authorized, SoC, memory, space, bundle, QAIRT,
    and one short Genie run. --all (or -s repeated): every phone at once, one summary table."""
    from qwenchat.checks.doctor import report_json, run_doctor
    from qwenchat.cli.options import one_serial, wants_fleet
    from qwenchat.models import get_model

    spec = get_model(model) if model is not None else None
    if wants_fleet(serials, all_phones, adb_servers):
        if report_file is not None:
            from qwenchat.errors import UsageError

            raise UsageError("--report is for one phone", "Name it with -s, without --all.")
        return _doctor_fleet(serials, all_phones, adb_servers, connect, transport, device_dir,
                             deep, spec, auth_timeout, json_output)  # fmt: skip
    serial = one_serial(serials)
    written: list[Path] = []
    report_path = None
    if report_file is not None:
        from qwenchat.output_file import check_output_path

        # Before the phone is asked anything: an empty name, a folder, qwenchat's own store,
        # or an existing file without --force is one line, not a doctor run.
        report_path = check_output_path(report_file, option="--report", force=force)

    def opener():  # noqa: ANN202
        return _open(serial, connect, transport, auth_timeout)

    def write_report(device, report) -> None:  # noqa: ANN001
        if report_path is not None:
            written.append(_write_report(report_path, device, report, device_dir))

    def run() -> object:
        return run_doctor(opener, device_dir, deep=deep, model=spec, then=write_report)

    if json_output:
        report = run()
        sys.stdout.write(report_json(report) + "\n")
        return 0 if report.ok else 1
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    with console.status("checking the phone…"):
        report = run()
    title = f"doctor: {report.address or 'no phone'}"
    if report.simulated:
        title += " [bold yellow](SIMULATED phone)[/]"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("check")
    table.add_column("result")
    table.add_column("advice")
    for check in report.checks:
        mark = ("[yellow]![/]" if check.warn else "[green]✓[/]") if check.ok else "[red]✗[/]"
        table.add_row(mark, check.name, escape(check.detail), escape(check.advice))
    console.print(table)
    for path in written:
        console.print(f"report written to {escape(str(path))} (serials hashed; attach it to an issue)")
    failed = [c.name for c in report.checks if not c.ok]
    if failed:
        console.print(f"[red]{len(failed)} check(s) failed:[/] {escape(', '.join(failed))}")
        return 1
    console.print("[green]all checks passed[/]")
    return 0


def clean(
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    bundle: Annotated[
        bool, typer.Option("--bundle", help="Also remove the model bundle and the runtime.")
    ] = False,
    all_: Annotated[bool, typer.Option("--all", help="Remove the whole work dir.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Don't ask before removing the bundle.")
    ] = False,
    auth_timeout: AuthTimeout = 30.0,
) -> int:
    """Remove dialog states and temporary files from the phone (--bundle: the model too).
    Live genie-app sessions (chat's session engine) are ended first, whoever started them."""
    from qwenchat.checks.clean import clean_targets, remove_targets, stop_live_sessions
    from qwenchat.errors import UsageError

    targets = clean_targets(device_dir, bundle=bundle, everything=all_)
    if (bundle or all_) and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "removing the bundle needs confirmation",
                "Add --yes (pushing it again takes minutes).",
            )
        typer.confirm(f"Remove {', '.join(targets)} from the phone?", abort=True)
    with _open(serial, connect, transport, auth_timeout) as dev:
        stopped = stop_live_sessions(dev, device_dir)
        freed = remove_targets(dev, targets)
    if stopped:
        typer.echo(f"ended {stopped} genie-app session(s) still running on the phone")
    typer.echo(f"removed {', '.join(targets)} ({freed / 1e6:.1f} MB freed)")
    return 0


def _write_report(path: Path, device, report, work_dir: str) -> Path:  # noqa: ANN001
    """The report file, written whole or not at all."""
    import json

    from qwenchat.checks.report import build_report
    from qwenchat.output_file import write_atomic

    doc = build_report(device, report, work_dir)
    # The path was checked before the phone was asked anything (output_file).
    write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def _doctor_fleet(serials, all_phones, adb_servers, connect, transport, device_dir, deep, spec,  # noqa: ANN001, PLR0913
                  auth_timeout, json_output) -> int:  # fmt: skip
    """doctor on every phone of the set at once; one summary table; exit 1 if any failed."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from qwenchat.checks.doctor import run_doctor
    from qwenchat.device.phoneset import for_each_phone, open_phone, resolve_phone_set

    problems: list = []
    phones = resolve_phone_set(serials, all_phones, adb_servers, connect=connect,
                               transport=transport, on_problem=problems.append)  # fmt: skip

    def check(ref):  # noqa: ANN001, ANN202
        def opener():  # noqa: ANN202
            return open_phone(ref, auth_timeout=auth_timeout)

        return run_doctor(opener, device_dir, deep=deep, model=spec)

    console = Console(highlight=False, width=max(Console().width, 150))
    if json_output:
        outcomes = for_each_phone(phones, check)
    else:
        with console.status(f"checking {len(phones)} phone(s)…"):
            outcomes = for_each_phone(phones, check)
    rows = []
    for outcome in outcomes:
        report = outcome.result
        if report is None:  # the checks themselves broke (a bug or a lost host): say so
            failed = [("doctor", f"{type(outcome.error).__name__}: {outcome.error}")]
            row = {"phone": outcome.phone.name, "ok": False, "soc": None, "simulated": False,
                   "passed": 0, "checks": 0, "failed": [n for n, _ in failed],
                   "first_failure": failed[0][1]}  # fmt: skip
        else:
            failed = [(c.name, c.detail) for c in report.checks if not c.ok]
            info = report.info or {}
            row = {"phone": outcome.phone.name, "ok": not failed, "soc": info.get("soc"),
                   "simulated": report.simulated, "passed": len(report.checks) - len(failed),
                   "checks": len(report.checks), "failed": [n for n, _ in failed],
                   "first_failure": failed[0][1] if failed else None,
                   "report": report.to_dict()}  # fmt: skip
        rows.append(row)
    bad = sum(1 for row in rows if not row["ok"])
    if json_output:
        sys.stdout.write(json.dumps({"phones": rows, "failed": bad, "unanswered_servers": [
            {"server": p.server, "error": p.message} for p in problems]}, indent=2) + "\n")
        return 1 if bad else 0
    table = Table(title=f"doctor: {len(rows)} phone(s)", title_justify="left")
    for column in ("", "phone", "SoC", "checks", "failed", "first failure"):
        table.add_column(column, no_wrap=column == "phone")
    for row in rows:
        mark = "[green]✓[/]" if row["ok"] else "[red]✗[/]"
        soc = escape(row["soc"] or "?") + (" [yellow]SIMULATED[/]" if row["simulated"] else "")
        table.add_row(mark, escape(row["phone"]), soc, f"{row['passed']}/{row['checks']}",
                      escape(", ".join(row["failed"])), escape(row["first_failure"] or ""))  # fmt: skip
    console.print(table)
    _print_problems(problems)
    if bad:
        console.print(f"[red]{bad} of {len(rows)} phone(s) failed a check[/]")
        return 1
    console.print(f"[green]all checks passed on {len(rows)} phone(s)[/]")
    return 0
