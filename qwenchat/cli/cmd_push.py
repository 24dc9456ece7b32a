"""`qwenchat push-assets`: put a Genie bundle on the phone, only what changed, verified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli.options import (
    DEFAULT_WORK_DIR,
    Connect,
    DeviceDir,
    Json,
    Serial,
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
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Folder with the context binaries (an AI Hub export)."),
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
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
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
    """
    import json

    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.errors import UsageError
    from qwenchat.layout import PhoneLayout
    from qwenchat.manifest import HashCache

    layout = PhoneLayout(device_dir)
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
