"""`qwenchat models`: the models qwenchat runs, Qualcomm's figures for each, and which one the
phone holds."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qwenchat.cli.options import DEFAULT_WORK_DIR, Connect, DeviceDir, Json, Serial, Transport

NARROW = 100  # columns below which the table would have to break ids


def register(app: typer.Typer) -> None:
    app.command("models")(models)


def models(
    phone: Annotated[
        bool, typer.Option("--phone/--no-phone", help="Ask the phone which model it holds.")
    ] = True,
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    json_output: Json = False,
) -> int:
    """List every model: AI Hub id, context, chips Qualcomm lists it for, published figures
    with their source and date, and whether it is the one on the phone."""
    import json

    from qwenchat.checks.models import model_rows, phone_model
    from qwenchat.errors import QwenchatError
    from qwenchat.layout import PhoneLayout

    on_phone, asked, note = None, False, ""
    if phone:
        from qwenchat.device.select import open_device

        try:
            with open_device(serial=serial, connect=connect, transport=transport,
                             auth_timeout=5) as device:
                on_phone, asked = phone_model(device, PhoneLayout(device_dir)), True
                note = f"phone {device.serial}: " + (on_phone or "no bundle")
        except QwenchatError as exc:
            note = f"no phone asked ({exc.message})"
    rows = model_rows(on_phone, asked)
    if json_output:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    sources: list[str] = []
    cells = []
    for r in rows:
        figures = "no published figure"
        if r.published is not None:
            p = r.published
            sources.append(f"[{len(sources) + 1}] {p['source']} ({p['date']})")
            figures = (
                f"TTFT {p['ttft_ms'][0]:.10g}–{p['ttft_ms'][1]:.10g} ms, "
                f"{p['decode_tok_s']:.10g} tok/s\n{p['device']} [{len(sources)}]"
            )
            for o in r.published_other_chips:  # each chip's own figures, its own source
                sources.append(f"[{len(sources) + 1}] {o['source']} ({o['date']})")
                figures += (f"\n{o['soc']}: TTFT {o['ttft_ms'][0]:.10g}–{o['ttft_ms'][1]:.10g} "
                            f"ms, {o['decode_tok_s']:.10g} tok/s [{len(sources)}]")  # fmt: skip
        notes = ([] if r.downloadable else ["(not downloadable: export it)"]) + (
            [] if r.tokenizer == "real" else [f"(tokenizer: {r.tokenizer})"]
        )
        on = "?" if r.on_phone is None else ("yes" if r.on_phone else "")
        cells.append((r, notes, figures, on))
    if console.width < NARROW:
        # Ids are what people copy: on a narrow terminal each model is a few lines of text
        # (wrapped only at spaces), never a table whose columns would break an id in two.
        console.print("Models")
        for r, notes, figures, on in cells:
            console.print(f"[bold]{escape(r.name)}[/] · AI Hub id {r.hub_id} · context {r.context}"
                          + "".join(f" {escape(n)}" for n in notes))  # fmt: skip
            console.print(f"  published for: {escape(', '.join(r.published_chips))}")
            console.print(f"  published figures: {escape(figures.replace(chr(10), ', '))}")
            console.print(f"  on phone: {on or 'no'}")
    else:
        table = Table(title="Models", title_justify="left", show_lines=True)
        # Never narrower than the longest id: no id is broken across lines.
        table.add_column("model", min_width=max(len(r.name) for r in rows))
        table.add_column("AI Hub id", min_width=max(len(r.hub_id) for r in rows))
        for header in ("context", "published for", "published figures", "on phone"):
            table.add_column(header, overflow="fold")
        for r, notes, figures, on in cells:
            table.add_row(escape("\n".join([r.name, *notes])), r.hub_id, str(r.context),
                          escape("\n".join(r.published_chips)), escape(figures), on)  # fmt: skip
        console.print(table)
    for line in sources:
        console.print(escape(line))
    if note:
        console.print(escape(note))
    return 0
