"""`qwenchat fetch`: download Qwen2-7B-Instruct context binaries from Qualcomm AI Hub."""

from __future__ import annotations

from typing import Annotated

import typer

from qwenchat.cli.options import Connect, Json, Serial, Transport

Chipset = Annotated[
    str | None,
    typer.Option(
        "--chipset",
        help="Chip to fetch for: a phone SoC id (SM8750) or an AI Hub chipset "
        "(qualcomm-snapdragon-8-elite). Default: ask the phone.",
    ),
]
HubJobOpt = Annotated[
    str | None,
    typer.Option(
        "--hub-job",
        help="Download the target model of your own AI Hub compile/link job instead "
        "(token from ~/.qai_hub/client.ini).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch_cmd)


def fetch_bundle(
    *,
    chipset: str | None,
    hub_job: str | None,
    serial: str | None = None,
    connect: str | None = None,
    transport: str = "auto",
    quiet: bool = False,
):  # noqa: ANN201 -> Path
    """Fetch from AI Hub (a job's model, or the published asset for the chip) -> bundle folder.

    Shared with `push-assets --hub`. Without --chipset the phone is asked for its SoC.
    """
    from qwenchat.hub.fetch import fetch_job_model, fetch_published_asset

    if hub_job is not None:
        return fetch_job_model(hub_job)
    if chipset is None:
        from qwenchat.assets.push import detect_soc
        from qwenchat.device.select import open_device

        device = open_device(serial=serial, connect=connect, transport=transport)
        try:
            chipset = detect_soc(device)
        finally:
            device.close()
    progress = None
    bar = None
    if not quiet:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
        )
        task = bar.add_task("AI Hub download", total=None)

        def progress(done: int, total: int | None) -> None:
            if not bar.live.is_started:
                bar.start()
            bar.update(task, completed=done, total=total)

    try:
        return fetch_published_asset(chipset, progress=progress)
    finally:
        if bar is not None:
            bar.stop()


def fetch_cmd(
    chipset: Chipset = None,
    hub_job: HubJobOpt = None,
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    json_output: Json = False,
) -> int:
    """Get the Qwen2-7B-Instruct w4a16 context binaries from AI Hub; print the bundle folder.

    The published asset for the chip comes from AI Hub Models' public store (resumable,
    size- and hash-checked, cached); --hub-job takes your own job's model through qai-hub.
    Needs `pip install 'qwenchat[hub]'`. Pass the folder to `push-assets --bundle`.
    """
    import json
    from pathlib import Path

    bundle: Path = fetch_bundle(
        chipset=chipset,
        hub_job=hub_job,
        serial=serial,
        connect=connect,
        transport=transport,
        quiet=json_output,
    )
    if json_output:
        files = sorted(p for p in bundle.iterdir() if p.is_file())
        typer.echo(
            json.dumps(
                {
                    "bundle": str(bundle),
                    "files": [{"name": p.name, "bytes": p.stat().st_size} for p in files],
                    "source": f"job {hub_job}" if hub_job else "AI Hub Models release asset",
                },
                indent=2,
            )
        )
    else:
        typer.echo(str(bundle))
    return 0
