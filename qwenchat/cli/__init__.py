"""The command line: a thin layer that parses options, calls the library and renders.

Each command lives in its own ``cmd_*.py`` module with a ``register(app)`` function. Those
modules import only typer at the top: heavy libraries (transformers, tokenizers, pydantic
models, matplotlib) are imported inside the command bodies so ``qwenchat --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import typer

from qwenchat import __version__

# Order here is the order in `qwenchat --help`.
COMMAND_MODULES = (
    "run",
    "serve",
    "bench",
    "push",
    "devices",
    "emulator",
    "history",
    "results",
    "fetch",
    "replay",
    "models",
)

app = typer.Typer(
    name="qwenchat",
    help="Chat with and benchmark LLMs (Qwen2-7B-Instruct by default; `qwenchat models` lists "
    "the others) on a Snapdragon phone through Qualcomm Genie.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich-rendered help costs ~150 ms of imports on every `--help`.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"qwenchat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    if debug:
        os.environ["QWENCHAT_DEBUG"] = "1"


for _name in COMMAND_MODULES:
    _module = f"qwenchat.cli.cmd_{_name}"
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module).register(app)


def main() -> None:
    from qwenchat.cli.errors import run_app

    code = run_app(app)
    _exit_now(code if isinstance(code, int) else 0)


def _exit_now(code: int) -> None:
    """End the process once everything of ours is done, without the interpreter's teardown.

    Freeing every module (pydantic, jinja2, the tokenizer) took 0.3-0.6 s after a one-shot
    answer was already out. Exit handlers still run and the streams are flushed; when a
    thread that is not a daemon still runs (it holds work to finish), the ordinary exit
    waits for it instead.
    """
    import atexit
    import threading

    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or vanished terminal: nothing to keep
            pass
    os._exit(code)
