"""`qwenchat results`: look back at stored bench runs, show them in any format, compare two,
export one."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

results_app = typer.Typer(
    help="Stored bench runs: list, show, compare two, export.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(results_app, name="results")


Output = Annotated[
    str, typer.Option("-o", "--output", help="table, md, csv, json or jsonl.")
]


def _open():  # noqa: ANN202 - (store context manager, BenchStorage class)
    from qwenchat.bench.storage import BenchStorage  # registers the bench migrations
    from qwenchat.store import open_store

    return open_store(), BenchStorage


@results_app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many to list.", min=1)] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> int:
    """The stored runs, newest first: id, date, model, device, SoC, simulated, lengths, status.

    Ids are always printed whole (they are what --resume, show and compare take): the other
    columns wrap instead."""
    import json

    from qwenchat.bench.formats import run_date

    store, BenchStorage = _open()
    with store:
        storage = BenchStorage(store)
        rows = []
        for run_id in storage.run_ids()[:limit]:
            run = storage.get_run(run_id)
            dev = run.context.device
            rows.append({
                "id": run.id, "date": run_date(run.created_at), "model": run.model,
                "device": dev.model or None, "soc": dev.soc or None,
                "simulated": run.simulated,
                "engine": run.context.engine,
                "lengths": [p.tokens for p in run.plan.lengths],
                "status": run.status.value,
                "trials": len(run.measured),
                "failed": sum(1 for t in run.trials if not t.ok),
            })
    if json_output:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    if not rows:
        console.print("no bench runs yet: `qwenchat bench` makes one")
        return 0
    # The id, date and status never wrap (ids are what --resume, show and compare take);
    # everything else shares one column that wraps at word boundaries.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=max(len(r["id"]) for r in rows))
    table.add_column("date", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("model · device · SoC · lengths · trials", ratio=1, overflow="fold")
    for r in rows:
        kind = "[yellow]SIMULATED[/]" if r["simulated"] else "real phone"
        if r["engine"] == "session":
            kind += " · session (warm dialog)"
        failed = f" [red]({r['failed']} failed)[/]" if r["failed"] else ""
        table.add_row(
            r["id"], r["date"], r["status"],
            f"{escape(r['model'])} · {escape(str(r['device'] or '?'))} · SoC "
            f"{escape(str(r['soc'] or '?'))} · {kind} · "
            + ", ".join(str(n) for n in r["lengths"]) + f" tokens · {r['trials']} trials{failed}",
        )
    console.print(table)
    _list_fleets(console, limit)
    return 0


def _list_fleets(console, limit: int) -> None:  # noqa: ANN001
    """Fleet runs (bench --all), newest first: id and how each phone ended."""
    from collections import Counter

    from rich.markup import escape

    from qwenchat.bench.fleet_storage import FleetStorage
    from qwenchat.store import open_store

    with open_store() as store:
        fleets = FleetStorage(store)
        records = [fleets.load(fleet_id) for fleet_id in fleets.fleet_ids()[:limit]]
    for fleet in records:
        ended = Counter(p.status for p in fleet.phones)
        console.print(f"{fleet.id}  fleet of {len(fleet.phones)} phone(s): "
                      + escape(", ".join(f"{n} {status}" for status, n in ended.items())))  # fmt: skip


@results_app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, or 'last'.")] = "last",
    output: Output = "table",
    chart: Annotated[bool, typer.Option("--chart/--no-chart", help="Chart under the table.")] = True,
    plot: Annotated[
        str | None, typer.Option("--plot", help="Also write a plot: FILE.png or FILE.svg.")
    ] = None,
) -> int:
    """One stored run's report, in any format (-o table|md|csv|json|jsonl); a fleet run
    (fleet-...) as one table, a row per phone and prompt length."""
    from qwenchat.bench.fleet_storage import is_fleet_ref
    from qwenchat.bench.formats import parse_format, write_report

    fmt = parse_format(output)
    if is_fleet_ref(run):
        from qwenchat.cli.cmd_bench_fleet import print_fleet_report

        return print_fleet_report(run, fmt, plot)
    store, BenchStorage = _open()
    with store:
        stored = BenchStorage(store).get_run(run)
    report = write_report(stored, fmt, sys.stdout, chart=chart)
    if plot:
        _plot(report, plot, stored.created_at)
    return 0


def _plot(report, path: str, created_at: float) -> None:  # noqa: ANN001 - BenchReport
    from rich.console import Console

    from qwenchat.bench.plot import write_plot

    write_plot(report, path, created_at=created_at)
    Console(stderr=True, highlight=False).print(f"[dim]plot written to {path}[/]")


@results_app.command("compare")
def compare(
    a: Annotated[str, typer.Argument(help="Run A (the baseline): id, prefix or 'last'.")],
    b: Annotated[str, typer.Argument(help="Run B (compared with A): id, prefix or 'last'.")],
    output: Annotated[
        str, typer.Option("-o", "--output", help="table, md, csv or json.")
    ] = "table",
    allow_different_models: Annotated[
        bool,
        typer.Option(
            "--allow-different-models",
            help="Compare runs of two models (refused by default: the difference would be "
            "the models', not the phones').",
        ),
    ] = False,
) -> int:
    """B against A per prompt length: differences of medians and whether they exceed the
    runs' own spread (p10–p90 half-widths)."""
    from qwenchat.bench import compare as cmp
    from qwenchat.bench.formats import parse_format
    from qwenchat.bench.report import build_report

    fmt = parse_format(output, ("table", "md", "csv", "json"))
    from qwenchat.bench.fleet_storage import is_fleet_ref

    if is_fleet_ref(a) or is_fleet_ref(b):
        return _compare_fleets(a, b, fmt, allow_different_models)
    store, BenchStorage = _open()
    with store:
        storage = BenchStorage(store)
        run_a = storage.get_run(a)
        run_b = storage.get_run(b)
    if run_a.id == run_b.id:
        from qwenchat.errors import UsageError

        raise UsageError(f"{a} and {b} are the same run ({run_a.id}): nothing to compare",
                         hint="Name two runs: `qwenchat results list` shows them.")
    result = cmp.compare_reports(
        build_report(run_a), build_report(run_b),
        allow_different_models=allow_different_models,
    )
    if fmt == "table":
        cmp.write_comparison_table(result, sys.stdout)
        if not sys.stdout.isatty():
            # The table went to a pipe or a file: say the warnings where the user looks too
            # (on a terminal they are already on screen, once).
            for warning in result.warnings:
                typer.secho(f"warning: {warning}", err=True, fg="yellow")
    else:
        {"md": cmp.write_comparison_markdown, "csv": cmp.write_comparison_csv,
         "json": cmp.write_comparison_json}[fmt](result, sys.stdout)
    return 0


def _compare_fleets(a: str, b: str, fmt: str, allow_different_models: bool) -> int:
    """Two fleet runs, phone by phone, as one table."""
    from qwenchat.bench.fleet_report import (
        build_fleet_report,
        compare_fleets,
        write_fleet_comparison,
    )
    from qwenchat.bench.fleet_storage import FleetStorage, is_fleet_ref
    from qwenchat.errors import UsageError

    if not (is_fleet_ref(a) and is_fleet_ref(b)):
        raise UsageError("compare a fleet run with a fleet run (fleet-...), or a run with a run",
                         hint="`qwenchat results list` shows both kinds.")  # fmt: skip
    store, BenchStorage = _open()
    with store:
        fleets, storage = FleetStorage(store), BenchStorage(store)
        report_a = build_fleet_report(fleets.load(a), storage)
        report_b = build_fleet_report(fleets.load(b), storage)
    result = compare_fleets(report_a, report_b, allow_different_models=allow_different_models)
    write_fleet_comparison(result, fmt, sys.stdout)
    return 0


@results_app.command("export")
def export(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, or 'last'.")] = "last",
    output: Annotated[
        str, typer.Option("-o", "--output", help="json (everything) or csv (one row per trial).")
    ] = "json",
    file: Annotated[
        str | None, typer.Option("--file", "-f", help="Write here instead of stdout.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace --file if it exists.")
    ] = False,
) -> int:
    """Export a run: JSON with every sample and the whole context, or CSV of the trials."""
    import io

    from qwenchat.bench.formats import parse_format, write_trials_csv
    from qwenchat.bench.report import build_report, write_json
    from qwenchat.output_file import check_output_path, write_atomic

    fmt = parse_format(output, ("json", "csv"))
    # Checked before anything is read: never qwenchat's own store, an existing file only
    # with --force (or a yes on a terminal).
    target = None if file is None else check_output_path(file, option="--file", force=force)
    store, BenchStorage = _open()
    with store:
        stored = BenchStorage(store).get_run(run)
    report = build_report(stored)
    writer = write_json if fmt == "json" else write_trials_csv
    if target is None:
        writer(report, sys.stdout)
        return 0
    buffer = io.StringIO(newline="")
    writer(report, buffer)
    write_atomic(target, buffer.getvalue(), newline="")
    typer.secho(f"run {stored.id} exported to {file}", err=True, dim=True)
    return 0
