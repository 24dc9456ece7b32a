"""`qwenchat history`: the conversations saved as they happened, listed, shown, exported."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from qwenchat.cli.options import Json
from qwenchat.runner.outcome import Outcome

# Replies that did not end on their own are marked where they are shown.
_UNFINISHED = (Outcome.CUT, Outcome.TIMED_OUT, Outcome.DEVICE_LOST, Outcome.FAILED)


def _unfinished_mark(stop: str | None) -> str | None:
    outcome = Outcome.parse(stop) if stop else None
    return outcome.label if outcome in _UNFINISHED else None


def register(app: typer.Typer) -> None:
    app.command("history")(history)


def history(
    conversation: Annotated[
        str | None,
        typer.Argument(help="A conversation id (or unique prefix, or 'last') to show."),
    ] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many to list.", min=1)] = 20,
    json_output: Json = False,
) -> int:
    """List saved chats, or show one (with each reply's figures); --json exports."""
    import sys

    from qwenchat.chat.storage import ChatStorage
    from qwenchat.errors import UsageError
    from qwenchat.store import open_store

    with open_store() as store:
        chats = ChatStorage(store)
        if conversation is None:
            rows = chats.list_conversations(limit)
            if json_output:
                data = [chats.conversation(r.id) for r in rows]
                sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
                return 0
            _print_list(rows)
            return 0
        full_id = chats.resolve_id(conversation)
        data = chats.conversation(full_id) if full_id else None
        if data is None:
            raise UsageError(
                f"no conversation {conversation!r}", hint="`qwenchat history` lists them."
            )
        if json_output:
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            _print_conversation(data)
    return 0


def _print_list(rows) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not rows:
        console.print("no conversations yet: `qwenchat run` starts one")
        return
    from qwenchat.visible import visible

    table = Table(box=None, pad_edge=False)
    # The id is what `qwenchat history ID` takes: never cut, however narrow the terminal.
    table.add_column("id", no_wrap=True, min_width=max(len(r.id) for r in rows))
    table.add_column("updated", no_wrap=True)
    table.add_column("msgs", justify="right")
    table.add_column("model · phone", ratio=1)
    table.add_column("first message", ratio=2, no_wrap=True, overflow="ellipsis")
    for r in rows:
        device = r.device_model or "?"
        if r.simulated and "SIMULATED" not in device:
            device += " (SIMULATED)"
        served = " · served" if r.origin == "served" else ""  # a `qwenchat serve` client's
        table.add_row(
            r.id, _short_time(r.updated_at), str(r.messages), f"{r.model} · {device}{served}",
            visible(r.title or ""),
        )
    console.print(table)


def _short_time(stamp: str) -> str:
    """``2026-11-30T07:36:15Z`` → ``11-30 07:36`` (the id already holds the full start)."""
    if len(stamp) >= 16 and stamp[10] == "T":
        return f"{stamp[5:10]} {stamp[11:16]}"
    return stamp


def _print_conversation(data: dict) -> None:
    from rich.console import Console
    from rich.markup import escape as markup_escape

    from qwenchat.visible import visible

    def escape(text: str) -> str:
        # Rich markup escaped, and control characters shown instead of sent to the terminal.
        return markup_escape(visible(text))

    # Soft wrap: the terminal wraps; copied text keeps its own lines.
    console = Console(highlight=False, soft_wrap=True)
    device = data["device"]
    sim = " · SIMULATED" if device["simulated"] else ""
    sim += " · served (qwenchat serve)" if data.get("origin") == "served" else ""
    console.print(
        f"[bold]{escape(data['id'])}[/] · {data['created_at']} · {escape(str(data['model']))}"
        f" on {escape(str(device['model']))} {escape(str(device['soc']))}{sim}"
    )
    if data["system"]:
        console.print(f"[dim]system:[/] {escape(data['system'])}")
    if data["settings"]:
        console.print(f"[dim]settings: {escape(json.dumps(data['settings']))}[/]")
    speaker = escape(str(data["model"]))
    for m in data["messages"]:
        dropped = " [dim](dropped)[/]" if m["dropped"] else ""
        if m["role"] == "user":
            console.print(f"\n[bold cyan]you:[/]{dropped} {escape(m['content'])}")
            continue
        # A reply that did not end on its own says so before its text, not only in the
        # figures: it is not what the model would have answered.
        mark = _unfinished_mark(m.get("stop_reason"))
        flag = f" [bold yellow]({mark}: partial)[/]" if mark and m["content"] else ""
        flag = f" [bold yellow]({mark}: no reply)[/]" if mark and not m["content"] else flag
        console.print(f"\n[bold green]{speaker}:[/]{dropped}{flag} {escape(m['content'])}")
        for g in m.get("generations", []):
            console.print(f"[dim]{escape(_generation_line(g))}[/]")


def _generation_line(g: dict) -> str:
    genie, host = g["genie"], g["host"]
    ttft = genie["time_to_first_token_us"]
    decode = genie["token_generation_rate_tok_s"]
    line = (
        f"genie: ttft {ttft / 1000:.0f} ms · decode {decode:.1f} tok/s · "
        f"{genie['num_prompt_tokens']} prompt tok · {genie['num_generated_tokens']} tok"
        if ttft is not None and decode is not None
        else "genie: no profile"
    )
    first = host["first_token_s"]
    line += f" │ host: first token {first:.2f} s" if first is not None else ""
    stop = g["stop_reason"]
    line += f" │ stop: {Outcome.parse(stop).label} · {g['prompt_mode']}"
    if g["error"]:
        line += f" · error: {g['error']}"
    if g.get("simulated"):
        line += " │ SIMULATED"
    return line
