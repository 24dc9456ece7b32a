"""`qwenchat devices | connect | disconnect | doctor | clean`: the phones and their work dir."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli import checked
from qwenchat.cli.options import (
    DEFAULT_WORK_DIR,
    Connect,
    DeviceDir,
    Json,
    Model,
    Serial,
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
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    auth_timeout: AuthTimeout = 30.0,
    json_output: Json = False,
) -> int:
    """Every phone qwenchat can reach: model, SoC, Hexagon arch, Android, RAM, free space."""
    import json

    from qwenchat.device.info import read_device_info
    from qwenchat.device.select import list_devices, open_summary
    from qwenchat.errors import DeviceError, DeviceUnauthorizedError

    summaries = list_devices(connect=connect, transport=transport)
    if serial:
        picked = [s for s in summaries if s.serial == serial]
        summaries = picked or summaries  # else matched by ro.serialno below
    rows: list[dict] = []
    for summary in summaries:
        row: dict = {
            "address": summary.serial,
            "transport": summary.transport,
            "state": summary.state,
        }
        if summary.usable:
            try:
                with open_summary(summary, on_wait=_say_waiting, auth_timeout=auth_timeout) as dev:
                    row.update(read_device_info(dev, device_dir).to_dict())
                    row["state"] = "device"
            except DeviceError as exc:
                unauthorized = isinstance(exc, DeviceUnauthorizedError)
                row["state"] = "unauthorized" if unauthorized else "error"
                row["error"] = exc.message
        if serial and row.get("serial") not in (serial, None) and row["address"] != serial:
            continue
        rows.append(row)
    if json_output:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    _print_devices(rows)
    return 0


def _print_devices(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Never squeeze a phone's address or serial into an ellipsis: they are what -s takes.
    console = Console(highlight=False, width=max(Console().width, 120))
    if not rows:
        console.print(
            "No phone found. [dim]Plug one in with USB debugging on, or "
            "`qwenchat connect HOST:PORT`.[/]"
        )
        return
    table = Table(title="Phones", title_justify="left")
    for column in ("address", "serial", "model", "SoC", "arch", "Android", "RAM", "free", "via"):
        table.add_column(column, no_wrap=column in ("address", "serial"))
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
                row["transport"],
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
            row["transport"],
        )
    console.print(table)
    if any_simulated:
        console.print(
            "[yellow]SIMULATED: the emulated phone (qwenchat's own); its figures are not a "
            "real Snapdragon's.[/]"
        )


def connect_cmd(
    address: Annotated[str, typer.Argument(help="HOST:PORT of a phone in `adb tcpip` mode.")],
    transport: Transport = "auto",
    auth_timeout: AuthTimeout = 30.0,
) -> int:
    """Reach a TCP phone now and remember it for later commands."""
    from rich.console import Console

    from qwenchat.device.endpoints import parse_endpoint, remember
    from qwenchat.device.info import read_device_info

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


def disconnect_cmd(
    address: Annotated[str, typer.Argument(help="HOST:PORT given to `qwenchat connect`.")],
) -> int:
    """Forget a TCP phone remembered by `qwenchat connect`."""
    from qwenchat.device.endpoints import forget, load_endpoints, parse_endpoint
    from qwenchat.errors import UsageError

    endpoint = parse_endpoint(address)
    if not forget(endpoint):
        known = ", ".join(e.address for e in load_endpoints()) or "none"
        raise UsageError(f"{endpoint.address} was not connected (remembered: {known})")
    typer.echo(f"disconnected {endpoint.address}")
    return 0


def doctor(
    serial: Serial = None,
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
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --report file if it exists.")
    ] = False,
    json_output: Json = False,
) -> int:
    """Check a phone step by step: reachable, authorized, SoC, memory, space, bundle, QAIRT,
    and one short Genie run."""
    from qwenchat.checks.doctor import report_json, run_doctor
    from qwenchat.models import get_model

    spec = get_model(model) if model is not None else None
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
