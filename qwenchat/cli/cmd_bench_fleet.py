"""`qwenchat bench --all` (or -s repeated): a fleet run, its --resume and its report.

Parses nothing of its own: `cmd_bench.bench` hands over its options; this resolves the
phone set, runs ``qwenchat.bench.fleet`` and renders one line per trial (phone named) and
the fleet report (``qwenchat.bench.fleet_report``). Exit status: the number of phones that
did not finish (0: all done; a phone without the bundle is skipped, not counted).
"""

from __future__ import annotations

import sys
from typing import Any


def _err_console():  # noqa: ANN202
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _line(event) -> None:  # noqa: ANN001 - FleetEvent
    """One line per finished trial or ended phone, the phone named first."""
    from rich.markup import escape

    from qwenchat.bench.progress import trial_summary

    console = _err_console()
    who = escape(event.phone)
    if event.status is not None:
        colour = {"done": "green", "skipped": "yellow"}.get(event.status, "red")
        note = f": {escape(event.note)}" if event.note else ""
        console.print(f"[{colour}]{who}: {event.status}[/]{note}")
        return
    e = event.event
    if e is None or e.phase != "finished" or e.trial is None:
        return
    kind = "warm-up" if e.slot.warmup else f"rep {e.slot.rep + 1}"
    console.print(f"{who} [{e.done}/{e.total}] {e.slot.length.tokens} tok {kind}: "
                  f"{trial_summary(e.trial)}")  # fmt: skip


def bench_fleet(
    *, show, resume, run_id, fmt, plot, serials, all_phones, adb_servers, connect, transport,  # noqa: ANN001
    device_dir, model, options: dict[str, Any],  # noqa: ANN001
) -> int:  # fmt: skip
    from qwenchat.bench.fleet import FleetInterrupted, resume_fleet, run_fleet
    from qwenchat.bench.fleet_storage import FleetStorage, is_fleet_ref
    from qwenchat.errors import UsageError
    from qwenchat.store import open_store

    if show is not None:
        return print_fleet_report(show, fmt, plot)
    from qwenchat.device.phoneset import open_phone, resolve_phone_set

    console = _err_console()
    problems: list = []

    def said(problem) -> None:  # noqa: ANN001
        problems.append(problem)
        console.print(f"[yellow]{problem.message}[/] (its phones are left out)")

    if resume:
        if not is_fleet_ref(run_id):
            raise UsageError("--resume with several phones takes a fleet run id (fleet-...)",
                             hint="`qwenchat results list` shows the runs.")  # fmt: skip
        with open_store() as store:
            fleet = FleetStorage(store).load(run_id)
        if not fleet.unfinished:
            raise UsageError(f"fleet bench run {fleet.id} is complete: every phone finished",
                             hint="Start a new one: qwenchat bench --all")  # fmt: skip
        servers = sorted({p.phone.partition("@")[2] for p in fleet.unfinished} - {""})
        openers = {}
        for p in fleet.unfinished:
            try:
                (ref,) = resolve_phone_set([p.phone], False, [*servers, *(adb_servers or [])],
                                           connect=connect, transport=transport)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - not there now: it stays unfinished
                console.print(f"[red]{p.phone}: not reachable: {getattr(exc, 'message', exc)}[/]")
                continue
            openers[p.phone] = lambda ref=ref: open_phone(ref)
        console.print(f"[dim]resuming fleet bench run {fleet.id}: "
                      f"{', '.join(openers) or 'no phone reachable'}[/]")  # fmt: skip
        try:
            ends = resume_fleet(fleet, openers, on_event=_line)
        except FleetInterrupted:
            print_fleet_report(fleet.id, fmt, plot)
            raise
        print_fleet_report(fleet.id, fmt, plot)
        with open_store() as store:
            left = FleetStorage(store).load(fleet.id).unfinished
        return min(100, len(left)) if ends is not None else 0

    from qwenchat.bench.runner import BenchOptions
    from qwenchat.bench.sweep import parse_lengths

    prompt_len = options.pop("prompt_len")
    bench_options = BenchOptions(
        lengths=None if prompt_len is None else parse_lengths(prompt_len), model=model,
        **{**options, "max_temp_action": options["max_temp_action"].strip().lower(),
           "protocol": options["protocol"].strip().lower(),
           "engine": options["engine"].strip().lower()},
    )  # fmt: skip
    if model is not None:
        from qwenchat.models.registry import get_model

        get_model(model)
    phones = resolve_phone_set(serials, all_phones, adb_servers, connect=connect,
                               transport=transport, on_problem=said)  # fmt: skip

    def check_phone(device) -> None:  # noqa: ANN001
        from qwenchat.assets.integrity import bundle_integrity
        from qwenchat.layout import PhoneLayout

        # A phone without a whole bundle is marked failed before any trial is stored.
        bundle_integrity(device, PhoneLayout(device_dir)).require()

    begun: list[str] = []

    def started(fleet_id: str) -> None:
        begun.append(fleet_id)
        console.print(f"[dim]fleet bench run {fleet_id} on {len(phones)} phone(s) "
                      f"(resume with --resume {fleet_id})[/]")  # fmt: skip

    try:
        fleet_id, ends = run_fleet(
            [(ref.name, lambda ref=ref: open_phone(ref)) for ref in phones], bench_options,
            device_dir, on_event=_line, on_start=started, check_phone=check_phone,
        )  # fmt: skip
    except FleetInterrupted:
        if begun:  # what every phone measured so far, before the one line saying so
            print_fleet_report(begun[0], fmt, plot)
        raise
    print_fleet_report(fleet_id, fmt, plot)
    return min(100, sum(1 for end in ends if end.status not in ("done", "skipped")))


def print_fleet_report(ref: str, fmt: str, plot: str | None) -> int:
    from qwenchat.bench.fleet_report import build_fleet_report, write_fleet_plot, write_fleet_report
    from qwenchat.bench.fleet_storage import FleetStorage
    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    with open_store() as store:
        fleet = FleetStorage(store).load(ref)
        report = build_fleet_report(fleet, BenchStorage(store))
    write_fleet_report(report, fmt, sys.stdout)
    if plot is not None:
        write_fleet_plot(report, plot)
        print(f"plot written to {plot}", file=sys.stderr)
    return 0
