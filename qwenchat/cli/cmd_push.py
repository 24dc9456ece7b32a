"""`qwenchat push-assets`: put a Genie bundle on the phone, only what changed, verified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli.options import (
    DEFAULT_WORK_DIR,
    AdbServers,
    AllPhones,
    Connect,
    DeviceDir,
    Json,
    Serials,
    Transport,
)

# The shared --model/-m flags, with push-assets' own default in the help: the bundle being
# pushed decides, not the one already on the phone.
PushModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model the bundle is for: qwen2-7b-instruct, ... (`qwenchat models`). Default: "
        "the model a fetched bundle names, else qwen2-7b-instruct.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("push-assets")(push_assets_cmd)


def _say(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[yellow]{escape(message)}[/]")


def push_assets_cmd(
    bundles: Annotated[
        list[str] | None,
        typer.Option(
            "--bundle",
            help="Folder with the context binaries (an AI Hub export). Several phones of "
            "different chips: one per Hexagon arch, --bundle v79=DIR --bundle v75=DIR2.",
        ),
    ] = None,
    hub: Annotated[
        bool,
        typer.Option("--hub", help="Fetch the published asset for the chip from AI Hub first."),
    ] = False,
    hub_job: Annotated[
        str | None,
        typer.Option("--hub-job", help="Fetch your own AI Hub job's model first (implies --hub)."),
    ] = None,
    chipset: Annotated[
        str | None,
        typer.Option(
            "--chipset", help="With --hub: the AI Hub chipset (default: --soc or the phone's)."
        ),
    ] = None,
    qairt: Annotated[
        Path | None,
        typer.Option(
            "--qairt",
            envvar="QAIRT_HOME",
            show_envvar=True,
            help="QAIRT SDK install: genie-t2t-run, libraries and the Skel for the phone's arch.",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option("--tokenizer", help="tokenizer.json, when the bundle has none."),
    ] = None,
    soc: Annotated[
        str | None,
        typer.Option("--soc", help="Chip to write configs for (default: what the phone says)."),
    ] = None,
    context_size: Annotated[
        int | None, typer.Option("--context-size", help="genie_config context size (tokens).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="genie_config max-num-tokens.")
    ] = None,
    temp: Annotated[float | None, typer.Option("--temp", help="Sampler temperature.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Sampler top-k.")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Sampler top-p.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Re-hash every file on the host and the phone; repair what differs on the phone.",
        ),
    ] = False,
    break_lock: Annotated[
        bool,
        typer.Option(
            "--break-lock",
            help="Take over the phone's push lock even if its owner may still be running.",
        ),
    ] = False,
    model: PushModel = None,
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    serials: Serials = None,
    connect: Connect = None,
    transport: Transport = "auto",
    all_phones: AllPhones = False,
    adb_servers: AdbServers = None,
    json_output: Json = False,
) -> int:
    """Send the bundle, the configs and the QAIRT runtime to the phone; skip what it holds.

    Context binaries are found by name (weight_sharing_model_N_of_M.serialized.bin,
    NAME_part_N_of_M.bin, partN_of_M.bin) or taken from the bundle's own genie_config.json.
    A part that is empty, smaller than half the median part, or of another size than the
    bundle's manifest.json records is refused as truncated; so is a tokenizer, config or
    bundle of another model than --model. Every file lands as NAME.partial, is checked
    with sha256sum on the phone, then renamed; the phone's manifest.json is removed first
    and written last, so the phone holds the old bundle or the new one, whole. One push
    at a time per phone (a lock with owner and age). Ctrl-C is safe: run again to resume.

    Several phones (--all, -s repeated, --adb-server): each phone its own worker, lock and
    skip-unchanged, one progress view, a summary per phone; a phone no --bundle fits
    (ARCH=DIR) is skipped with one line. Exit status: the number of phones that failed.
    """
    import json

    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.fleet import parse_bundle_choices
    from qwenchat.cli.options import one_serial, wants_fleet
    from qwenchat.errors import UsageError
    from qwenchat.layout import PhoneLayout
    from qwenchat.manifest import HashCache

    if top_k is not None and top_k < 1:  # `run --top-k 0` and /set refuse it too
        raise UsageError(f"--top-k {top_k}: must be at least 1", "Qualcomm's configs use 40.")
    if chipset is not None and not (hub or hub_job):
        raise UsageError("--chipset only chooses what --hub / --hub-job fetch",
                         hint="Add --hub, or leave --chipset out (the bundle is pushed as it is).")
    layout = PhoneLayout(device_dir)
    choices = parse_bundle_choices(bundles or [])
    if wants_fleet(serials, all_phones, adb_servers) or any(c.arch for c in choices):
        if hub or hub_job:
            raise UsageError("--hub fetches one chip's bundle: for several phones, fetch each "
                             "arch's (`qwenchat fetch`) and pass --bundle ARCH=DIR per arch")  # fmt: skip
        if not choices:
            raise UsageError("give --bundle FOLDER (or --bundle ARCH=FOLDER per Hexagon arch)")
        for choice in choices:
            _check_paths(choice.path, qairt, tokenizer)
        return _push_fleet(
            choices, qairt, tokenizer, model, soc, layout, verify, break_lock, json_output,
            dict(context_size=context_size, max_num_tokens=max_tokens, temp=temp, top_k=top_k,
                 top_p=top_p, seed=seed),
            serials=serials, all_phones=all_phones, adb_servers=adb_servers, connect=connect,
            transport=transport,
        )  # fmt: skip
    if len(choices) > 1:
        raise UsageError("several --bundle folders for one phone",
                         "Give one, or ARCH=DIR per Hexagon arch for several phones.")  # fmt: skip
    bundle = choices[0].path if choices else None
    serial = one_serial(serials)
    spec = _model_for(model, bundle)
    if soc is not None:
        _check_soc(soc)
    if hub or hub_job:  # AI Hub download (qwenchat.hub), then push that bundle as it is
        from qwenchat.cli.cmd_fetch import fetch_bundle

        bundle = fetch_bundle(
            chipset=chipset or soc,
            hub_job=hub_job,
            model=model,
            serial=serial,
            connect=connect,
            transport=transport,
            quiet=json_output,
        )
    if bundle is None:
        raise UsageError("give --bundle FOLDER, or --hub / --hub-job to fetch one from AI Hub")
    if qairt is None and os.environ.get("QAIRT_HOME"):
        qairt = Path(os.environ["QAIRT_HOME"])
    _check_paths(bundle, qairt, tokenizer)
    overrides = dict(
        context_size=context_size,
        max_num_tokens=max_tokens,
        temp=temp,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
    )

    # One hash cache for planning (the tokenizer's facts) and pushing (file hashes), so a
    # damaged cache is rebuilt once and said once.
    cache = HashCache()

    def plan_for(chip: str):  # noqa: ANN202
        return plan_bundle(
            bundle, qairt, chip, tokenizer=tokenizer, model=spec, cache=cache, **overrides
        )

    try:
        report = _plan_and_push(
            plan_for, soc, layout, verify, break_lock, json_output, cache,
            serial=serial, connect=connect, transport=transport,
        )  # fmt: skip
    finally:
        cache.close()
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return 0
    _render(report)
    return 0


def _plan_and_push(plan_for, soc, layout, verify, break_lock, json_output, cache, **where):  # noqa: ANN001, ANN202, PLR0913
    from qwenchat.assets.push import PushInterruptedError, detect_soc, push_assets
    from qwenchat.device.select import open_device

    if soc is not None:
        # Check the bundle before touching a phone: bad input fails fast, even with none.
        plan = plan_for(soc)
    device = open_device(on_wait=_say, **where)
    try:
        from qwenchat.runner import sweep_dead_runs

        sweep_dead_runs(device, layout)  # what killed runs of this computer left (issue 31)
        if soc is None:
            plan = plan_for(detect_soc(device))
        if not json_output:
            for warning in plan.warnings:
                _say(f"warning: {warning}")
        progress = None
        if not json_output:
            from qwenchat.assets.progress import RichPushProgress

            progress = RichPushProgress()
        try:
            report = push_assets(
                device,
                plan,
                layout,
                verify=verify,
                progress=progress,
                cache=cache,
                break_lock=break_lock,
            )
        except KeyboardInterrupt:
            stopped = PushInterruptedError("interrupted; run again to resume")
            stopped.exit_code = 130
            raise stopped from None
        finally:
            if progress is not None:
                progress.end()
    finally:
        device.close()
    return report


def _model_for(name: str | None, bundle: Path | None):  # noqa: ANN202 - ModelSpec
    """--model, else the model a fetched bundle names (when qwenchat knows it), else the
    default model."""
    from qwenchat.assets.validate import bundle_metadata_model
    from qwenchat.errors import UsageError
    from qwenchat.models.registry import get_model

    if name is not None:
        return get_model(name)  # UsageError (exit 2) naming the known models
    named = bundle_metadata_model(bundle) if bundle is not None else None
    if named is not None:
        try:
            return get_model(named)
        except UsageError:
            pass  # plan_bundle refuses it, naming both models
    return get_model(None)


def _check_soc(soc: str) -> None:
    from qwenchat.errors import ConfigError, UsageError
    from qwenchat.soc import soc_info

    try:
        soc_info(soc)
    except ConfigError as exc:
        raise UsageError(f"--soc {soc}: {exc.message}", exc.hint) from None


def _check_paths(bundle: Path, qairt: Path | None, tokenizer: Path | None) -> None:
    """Paths typed on the command line that do not exist are usage errors (exit 2)."""
    from qwenchat.errors import UsageError

    if not bundle.is_dir():
        what = "is a file, not a folder" if bundle.exists() else "does not exist"
        raise UsageError(
            f"--bundle {bundle} {what}",
            "Pass the folder holding the context binaries (*.bin) of an AI Hub export.",
        )
    if qairt is not None and not qairt.is_dir():
        what = "is a file, not a folder" if qairt.exists() else "does not exist"
        raise UsageError(
            f"--qairt {qairt} {what} (QAIRT SDK folder not found)",
            "Pass --qairt DIR or set QAIRT_HOME to a QAIRT SDK install (it holds bin/ and lib/).",
        )
    if tokenizer is not None and not tokenizer.is_file():
        what = "is a folder" if tokenizer.is_dir() else "does not exist"
        raise UsageError(f"--tokenizer {tokenizer} {what}", "Pass the model's tokenizer.json.")


def _render(report) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.markup import escape

    from qwenchat.assets.push import format_bytes

    console = Console(highlight=False)
    sim = " [yellow](SIMULATED phone)[/]" if report.simulated else ""
    if report.files_sent:
        console.print(
            f"[green]sent {report.files_sent} file(s)[/], {format_bytes(report.bytes_sent)} in "
            f"{report.send_seconds:.1f} s ({report.mb_per_s:.1f} MB/s, host clock), each "
            f"checked with SHA-256 on the phone; {report.files_skipped} unchanged{sim}"
        )
    else:
        console.print(
            f"[green]phone already holds the bundle[/]: {report.files_skipped} file(s), "
            f"{format_bytes(report.bytes_total)}, nothing sent{sim}"
        )
    if report.resumed:
        console.print(
            f"resumed {len(report.resumed)} file(s) an interrupted push had sent in full "
            f"(renamed, not sent again): {', '.join(report.resumed)}"
        )
    if report.retried:
        console.print(
            f"[yellow]arrived damaged once and sent again[/]: {', '.join(report.retried)}"
        )
    if report.verify_text:
        console.print(report.verify_text)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"[dim]{report.work_dir} · {report.seconds:.2f} s in all[/]")


def _push_fleet(choices, qairt, tokenizer, model, soc, layout, verify, break_lock,  # noqa: ANN001, ANN202, PLR0913
                json_output, overrides, **where) -> int:  # fmt: skip
    """push-assets to every phone of the set; exit status = phones failed (at most 100)."""
    import json

    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.fleet import FleetPushRequest, push_fleet
    from qwenchat.device.phoneset import open_phone, resolve_phone_set
    from qwenchat.manifest import HashCache

    if soc is not None:
        from qwenchat.errors import UsageError

        raise UsageError("--soc names one chip: with several phones each says its own",
                         "Drop --soc; `qwenchat devices` shows each phone's chip.")  # fmt: skip
    problems: list = []
    phones = resolve_phone_set(where["serials"], where["all_phones"], where["adb_servers"],
                               connect=where["connect"], transport=where["transport"],
                               on_problem=problems.append)  # fmt: skip
    for problem in problems:
        _say(problem.message + " (its phones are left out)")
    specs = {c.path: _model_for(model, c.path) for c in choices}

    def plan_for(bundle_dir, chip, cache):  # noqa: ANN001, ANN202
        return plan_bundle(bundle_dir, qairt, chip, tokenizer=tokenizer, model=specs[bundle_dir],
                           cache=cache, **overrides)  # fmt: skip

    request = FleetPushRequest(choices, plan_for, layout, verify=verify, break_lock=break_lock)
    openers = [(ref.name, (lambda ref=ref: open_phone(ref, on_wait=_say))) for ref in phones]
    progress = None
    if not json_output:
        from qwenchat.assets.fleet_progress import RichFleetProgress

        progress = RichFleetProgress()
    cache = HashCache()
    try:
        results = push_fleet(openers, request, cache, progress)
    finally:
        cache.close()
    failed = sum(1 for r in results if r.status == "failed")
    if json_output:
        typer.echo(json.dumps({
            "phones": [r.to_dict() for r in results], "failed": failed,
            "unanswered_servers": [{"server": p.server, "error": p.message} for p in problems],
        }, indent=2))  # fmt: skip
    else:
        _render_fleet(results)
    return min(failed, 100)


def _render_fleet(results) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from qwenchat.assets.push import format_bytes

    console = Console(highlight=False, width=max(Console().width, 150))
    table = Table(title=f"push-assets: {len(results)} phone(s)", title_justify="left")
    for column in ("phone", "SoC", "arch", "bundle", "result", "sent", "MB/s (host clock)"):
        table.add_column(column, no_wrap=column == "phone")
    simulated = False
    for r in results:
        report = r.report
        simulated = simulated or bool(report and report.simulated)
        if r.status in ("failed", "skipped"):
            colour = "red" if r.status == "failed" else "yellow"
            result = f"[{colour}]{r.status}[/]: {escape(r.message)}"
        elif r.status == "sent":
            result = f"[green]sent {report.files_sent} file(s)[/], {report.files_skipped} unchanged"
        else:
            result = f"[green]already held[/]: {report.files_skipped} file(s)"
        sent = format_bytes(report.bytes_sent) if report else ""
        speed = f"{report.mb_per_s:.1f}" if report and report.files_sent else ""
        sim = " [yellow]SIMULATED[/]" if report and report.simulated else ""
        table.add_row(escape(r.phone), escape(r.soc or "?") + sim, escape(r.arch or "?"),
                      escape(r.bundle or ""), result, sent, speed)  # fmt: skip
    console.print(table)
    failed = [r for r in results if r.status == "failed"]
    skipped = [r for r in results if r.status == "skipped"]
    done = len(results) - len(failed) - len(skipped)
    console.print(f"{done} phone(s) hold the bundle, {len(skipped)} skipped, "
                  f"[{'red' if failed else 'green'}]{len(failed)} failed[/]"
                  + (" (SIMULATED phones)" if simulated else ""))  # fmt: skip
    for r in failed:
        if r.hint:
            console.print(f"[dim]{escape(r.phone)}: {escape(r.hint)}[/]")
