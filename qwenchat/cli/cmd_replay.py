"""`qwenchat replay FILE`: what a real phone printed, read back as a live run would read it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qwenchat.cli.options import Json


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    file: Annotated[
        Path,
        typer.Argument(help="A `doctor --report` file, or a capture (NAME.stdout.txt, ...)."),
    ],
    json_output: Json = False,
) -> int:
    """Print what qwenchat makes of a real phone's genie-t2t-run output: reply, figures,
    outcome and diagnosis, through the same parser and rules as a live run."""
    import json

    from qwenchat.runner.record import genie_figures
    from qwenchat.runner.replay import load_capture
    from qwenchat.runner.replay import replay as replay_capture

    capture = load_capture(file)
    record = replay_capture(capture)
    figures = genie_figures(record)
    source = (capture.provenance or {}).get("issue_url") or (capture.provenance or {}).get(
        "repository"
    )
    if json_output:
        payload = {
            "capture": capture.source,
            "source": source,
            "libgenie_version": record.libgenie_version,
            "reply": record.text,
            "outcome": record.outcome.value,
            "exit_code": record.exit_code,
            "figures": figures,
            "failure": None if record.failure is None else {
                "kind": record.failure.kind,
                "line": record.failure.message,
                "hint": record.failure.hint,
            },
            "error": record.error,
            "notes": record.notes,
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    out.write(f"replay of {capture.source}" + (f"  (source: {source})" if source else "") + "\n")
    out.write(f"libGenie {record.libgenie_version or '(no version line)'}\n")
    if record.text:
        out.write(f"reply: {record.text}\n")
    code = "not captured" if record.exit_code is None else str(record.exit_code)
    out.write(f"outcome: {record.outcome.value} (exit code {code})\n")
    if figures is not None:
        shown = ", ".join(
            f"{key} {value:g}" for key, value in figures.items()
            if key != "source" and isinstance(value, int | float)
        )
        out.write(f"figures ({figures['source']}): {shown}\n")
    if record.failure is not None:
        out.write(f"diagnosis ({record.failure.kind}): {record.failure.message}\n")
        out.write(f"hint: {record.failure.hint}\n")
    elif record.error:
        out.write(f"error: {record.error}\n")
    for note in record.notes:
        out.write(f"note: {note}\n")
    return 0
