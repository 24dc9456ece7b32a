"""`qwenchat history`: the conversations saved as they happened, listed, shown, exported."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from qwenchat.cli.options import Json


def register(app: typer.Typer) -> None:
    app.command("history")(history)


def history(
    conversation: Annotated[
        str | None,
        typer.Argument(help="A conversation id (or unique prefix, or 'last') to show."),
    ] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many to list.")] = 20,
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
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("msgs", justify="right")
    table.add_column("device")
    table.add_column("first message", ratio=1)
    for r in rows:
        device = r.device_model or "?"
        if r.simulated and "SIMULATED" not in device:
            device += " (SIMULATED)"
        table.add_row(r.id, r.updated_at, str(r.messages), device, r.title or "")
    console.print(table)


def _print_conversation(data: dict) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    device = data["device"]
    sim = " · SIMULATED" if device["simulated"] else ""
    console.print(
        f"[bold]{escape(data['id'])}[/] · {data['created_at']} · "
        f"{escape(str(device['model']))} {escape(str(device['soc']))}{sim}"
    )
    if data["system"]:
        console.print(f"[dim]system:[/] {escape(data['system'])}")
    if data["settings"]:
        console.print(f"[dim]settings: {escape(json.dumps(data['settings']))}[/]")
    for m in data["messages"]:
        dropped = " [dim](dropped)[/]" if m["dropped"] else ""
        if m["role"] == "user":
            console.print(f"\n[bold cyan]you:[/]{dropped} {escape(m['content'])}")
            continue
        console.print(f"\n[bold green]qwen:[/]{dropped} {escape(m['content'])}")
        for g in m.get("generations", []):
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
            line += f" │ stop: {g['stop_reason']} · {g['prompt_mode']}"
            if g["error"]:
                line += f" · error: {g['error']}"
            console.print(f"[dim]{escape(line)}[/]")

