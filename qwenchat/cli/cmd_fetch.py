"""`qwenchat fetch`: download a model's context binaries from Qualcomm AI Hub."""

from __future__ import annotations

from typing import Annotated

import typer

from qwenchat.cli.options import Connect, Json, Serial, Transport
from qwenchat.models.registry import DEFAULT_MODEL, MODELS

Chipset = Annotated[
    str | None,
    typer.Option(
        "--chipset",
        help="Chip to fetch for: a phone SoC id (SM8750) or an AI Hub chipset "
        "(qualcomm-snapdragon-8-elite-for-galaxy). Default: ask the phone.",
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
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=f"Model to fetch: {', '.join(m.name for m in MODELS)}. Default: {DEFAULT_MODEL}.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch_cmd)


def fetch_bundle(
    *,
    chipset: str | None,
    hub_job: str | None,
    model: str | None = None,
    serial: str | None = None,
    connect: str | None = None,
    transport: str = "auto",
    quiet: bool = False,
):  # noqa: ANN201 -> Path
    """Fetch from AI Hub (a job's model, or the published asset for the chip) -> bundle folder.

    Shared with `push-assets --hub`. Without --chipset the phone is asked for its SoC.
    """
    from qwenchat.hub.fetch import fetch_job_model, fetch_published_asset, not_downloadable
    from qwenchat.models.registry import get_model

    spec = get_model(model)
    if hub_job is not None:
        return fetch_job_model(hub_job, model=spec)
    if not spec.hub.downloadable:  # before a phone or the network is asked anything
        raise not_downloadable(spec)
    if chipset is None:
        from qwenchat.assets.push import detect_soc
        from qwenchat.device.select import open_device

        device = open_device(serial=serial, connect=connect, transport=transport)
        try:
            chipset = detect_soc(device)
        finally:
            device.close()
    progress = None
    if not quiet:
        from qwenchat.hub.progress import download_progress

        progress = download_progress()
    return fetch_published_asset(chipset, model=spec, progress=progress)


def fetch_cmd(
    chipset: Chipset = None,
    hub_job: HubJobOpt = None,
    model: ModelOpt = None,
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    json_output: Json = False,
) -> int:
    """Get a model's context binaries from AI Hub; print the bundle folder.

    The published asset for the chip comes from AI Hub Models' public store (a Genie bundle
    or bare context binaries, whichever the release index lists; resumable, size- and
    hash-checked, cached); --hub-job takes your own job's model through qai-hub. The
    folder's manifest.json records the source and the QAIRT version the binaries were
    built with. Needs `pip install 'qwenchat[hub]'`. Pass the folder to
    `push-assets --bundle`.
    """
    import json
    from pathlib import Path

    bundle: Path = fetch_bundle(
        chipset=chipset,
        hub_job=hub_job,
        model=model,
        serial=serial,
        connect=connect,
        transport=transport,
        quiet=json_output,
    )
    if json_output:
        from qwenchat.hub.metadata import read_metadata

        record = read_metadata(bundle) or {}
        files = sorted(p for p in bundle.iterdir() if p.is_file() and p.name != "manifest.json")
        typer.echo(
            json.dumps(
                {
                    "bundle": str(bundle),
                    "model": (record.get("model") or {}).get("name"),
                    "runtime": record.get("runtime"),
                    "chipset": record.get("chipset"),
                    "qairt": (record.get("tool_versions") or {}).get("qairt"),
                    "files": [{"name": p.name, "bytes": p.stat().st_size} for p in files],
                    "source": f"job {hub_job}" if hub_job else "AI Hub Models release asset",
                },
                indent=2,
            )
        )
    else:
        typer.echo(str(bundle))
    return 0
