"""Turning exceptions into one red line, a hint and an exit code."""

from __future__ import annotations

import errno
import os
import sys

import typer

from qwenchat.errors import QwenchatError


def _debug() -> bool:
    return "--debug" in sys.argv or os.environ.get("QWENCHAT_DEBUG") == "1"


def report_error(message: str, hint: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    # soft_wrap: one error is one line, whatever the width (the terminal wraps it, not Rich).
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        console.print(f"[dim]hint: {escape(hint)}[/]")


def _click_modules() -> list:
    """The click typer really runs, and the standalone one: typer 0.28 vendors its own click
    (typer._click), whose exceptions are not the standalone click's."""
    mods = [sys.modules[typer.BadParameter.__module__]]
    try:
        import click.exceptions

        if click.exceptions not in mods:
            mods.append(click.exceptions)
    except ImportError:
        pass
    return mods


def _catch(name: str) -> tuple[type[BaseException], ...]:
    found = tuple(getattr(m, name) for m in _click_modules() if hasattr(m, name))
    if name in ("Exit", "Abort"):
        found += (getattr(typer, name),)
    return found


def _print_usage(app: typer.Typer, argv: list[str]) -> None:
    """The usage line of the (sub)command ``argv`` names, for errors raised without one."""
    try:
        command = typer.main.get_command(app)
        ctx = command.make_context("qwenchat", [], resilient_parsing=True)
        for word in argv:
            sub = getattr(command, "commands", {}).get(word)
            if sub is None:
                continue
            ctx = sub.make_context(word, [], parent=ctx, resilient_parsing=True)
            command = sub
        sys.stderr.write(command.get_usage(ctx) + "\n")
        sys.stderr.write(f"Try '{ctx.command_path} -h' for help.\n\n")
    except Exception:  # noqa: BLE001 - the error line below still says what is wrong
        pass


def run_app(app: typer.Typer, argv: list[str] | None = None) -> int:
    from qwenchat import signals

    signals.install()
    try:
        result = app(args=argv, prog_name="qwenchat", standalone_mode=False)
        if result == 130 and signals.Terminated.received is not None:
            # Typer turns a KeyboardInterrupt into a plain 130: SIGTERM and SIGHUP
            # (Terminated) keep their own exit codes (143, 129).
            signum = signals.Terminated.received
            report_error(f"interrupted ({signals.signal_name(signum)})")
            return 128 + signum
        return result if isinstance(result, int) else 0
    except QwenchatError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        report_error(exc.message, exc.hint)
        if exc.exit_code == 130 and signals.Terminated.received is not None:
            return 128 + signals.Terminated.received  # e.g. a bench stopped by SIGTERM
        return exc.exit_code
    except _catch("Exit") as exc:
        return exc.exit_code
    except _catch("Abort"):
        report_error("interrupted")
        return 130
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (qwenchat.signals)
        report_error(f"interrupted ({exc})" if str(exc) else "interrupted")
        return signals.exit_code(exc)
    except _catch("ClickException") as exc:  # usage errors: the usage line, the error, exit 2
        if getattr(exc, "ctx", False) is None:  # raised by the parser before a context existed
            _print_usage(app, sys.argv[1:] if argv is None else argv)
        exc.show()
        return exc.exit_code
    except OSError as exc:
        if _debug():
            raise
        if exc.errno not in _OUTPUT_FULL:
            return _unexpected(exc)
        # stdout (or a file) on a full disk, e.g. `qwenchat run hi > /dev/full`: one line.
        _silence_stdout()
        report_error(f"cannot write the output: {exc.strerror or exc}",
                     "Free some space, or send the output elsewhere.")
        return 1
    except Exception as exc:  # an unexpected bug: still one line unless --debug
        if _debug():
            raise
        return _unexpected(exc)


_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered must not fail again at exit (Python
    would print its own 'Exception ignored' lines after ours)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _unexpected(exc: BaseException) -> int:
    """An unexpected bug: still one line unless --debug."""
    report_error(
        f"unexpected {type(exc).__name__}: {exc}",
        "Run again with --debug for the traceback, and report it.",
    )
    return 70
