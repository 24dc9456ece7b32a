"""Turning exceptions into one red line, a hint and an exit code."""

from __future__ import annotations

import os
import sys

import click
import typer

from qwenchat.errors import QwenchatError


def _debug() -> bool:
    return "--debug" in sys.argv or os.environ.get("QWENCHAT_DEBUG") == "1"


def report_error(message: str, hint: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)
    console.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        console.print(f"[dim]hint: {escape(hint)}[/]")


def run_app(app: typer.Typer, argv: list[str] | None = None) -> int:
    from qwenchat import signals

    signals.install()
    try:
        result = app(args=argv, prog_name="qwenchat", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except QwenchatError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        report_error(exc.message, exc.hint)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        report_error("interrupted")
        return 130
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (qwenchat.signals)
        report_error(f"interrupted ({exc})" if str(exc) else "interrupted")
        return signals.exit_code(exc)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: still one line unless --debug
        if _debug():
            raise
        report_error(
            f"unexpected {type(exc).__name__}: {exc}",
            "Run again with --debug for the traceback, and report it.",
        )
        return 70
