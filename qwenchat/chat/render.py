"""Terminal output of a chat: streamed tokens, the Markdown re-render, the figures line.

Tokens are written and flushed the moment they arrive (no refresh-rate throttling, no Live
redraw that breaks on a reply taller than the screen). Only when the reply fits on the screen
and stdout is a terminal is it redrawn once as Markdown at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from qwenchat.chat.outcome import ReplyFigures, ReplyResult

# Why a reply has no profile from Genie.
_NO_PROFILE = {"cut": "process stopped", "timed_out": "process stopped", "device_lost": "phone lost"}


class ReplyStream:
    """Writes one reply as it streams; ``finish`` optionally redraws it as Markdown."""

    def __init__(self, out: TextIO | None = None, *, markdown: bool = True) -> None:
        self.out = out if out is not None else sys.stdout
        self.markdown = markdown
        self.parts: list[str] = []
        self._tty = _isatty(self.out)

    def write(self, text: str) -> None:
        from qwenchat.visible import visible

        # Control characters in a reply are shown, never obeyed by the terminal.
        shown = visible(text)
        self.parts.append(shown)
        self.out.write(shown)
        self.out.flush()

    def finish(self) -> None:
        text = "".join(self.parts)
        if not text.endswith("\n"):
            self.out.write("\n")
            self.out.flush()
        if not (self.markdown and self._tty and text.strip()):
            return
        size = shutil.get_terminal_size()
        lines = _screen_lines(text, size.columns)
        # Redrawing means moving the cursor up over what was streamed: only possible when all
        # of it is still on screen (a taller reply would leave a torn copy in the scrollback).
        if lines + 1 >= size.lines:
            return
        from rich.console import Console
        from rich.markdown import Markdown

        self.out.write(f"\x1b[{lines}F\x1b[J")
        self.out.flush()
        Console(file=self.out, highlight=False).print(Markdown(text))


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _screen_lines(text: str, columns: int) -> int:
    from rich.cells import cell_len

    columns = max(columns, 1)
    total = 0
    for line in text.rstrip("\n").split("\n"):
        total += max(1, -(-cell_len(line) // columns))
    return total


def _ms(us: float | None) -> str:
    return "?" if us is None else f"{us / 1000:.0f} ms"


def _seconds(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"


def figures_line(result: ReplyResult) -> str:
    """One line, every figure under the name of its source:

    ``genie: ttft 171 ms · prefill 750 tok/s · decode 13.6 tok/s · load 3.1 s │ host: first
    token 3.4 s │ 57 tok · ctx 412/4096 · stop: eos │ SIMULATED``

    The host figure counts from Enter: everything the user waited, host work included. In a
    live session (``engine == "session"``) the load is paid once: its figures appear on the
    reply that waited for it, every later one says "warm dialog".
    """
    f: ReplyFigures = result.figures
    if f.genie_ttft_us is not None or f.genie_decode_rate is not None:
        genie = (
            f"genie: ttft {_ms(f.genie_ttft_us)}"
            f" · prefill {_rate(f.genie_prefill_rate)}"
            f" ({f.genie_prompt_tokens if f.genie_prompt_tokens is not None else '?'} tok)"
            f" · decode {_rate(f.genie_decode_rate)}"
        )
        if f.engine != "session":
            genie += f" · load {_seconds(None if f.genie_init_us is None else f.genie_init_us / 1e6)}"
        elif f.genie_init_us is not None:
            # A live session loads once: shown on the reply that waited for it, only there.
            genie += f" · load {_seconds(f.genie_init_us / 1e6)} (once per session)"
    else:
        genie = f"genie: no profile ({_NO_PROFILE.get(result.stop.value, 'process failed')})"
    host = f"host: first token {_seconds(f.host_first_token_s)}"
    if f.engine == "session":
        host += (
            f" (model load {_seconds(f.host_load_s)} included)"
            if f.host_load_s is not None else " (warm dialog)"
        )
    generated = f.genie_generated_tokens
    tokens = f"{generated} tok" if generated is not None else "? tok"
    ctx = f"ctx {f.ctx_used if f.ctx_used is not None else '?'}/{f.ctx_size}"
    stop = f"stop: {result.stop.label}"
    parts = [genie, host, f"{tokens} · {ctx} · {stop} · {result.mode.value}"]
    if f.simulated:
        parts.append("SIMULATED")
    return " │ ".join(parts)


def _rate(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f} tok/s" if value < 100 else f"{value:.0f} tok/s"


def print_figures(result: ReplyResult, out: TextIO | None = None, *, errors: bool = True) -> None:
    """The figures line; then the reply's error and hint (unless the caller reports them)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=out if out is not None else sys.stdout, highlight=False, soft_wrap=True)
    console.print(f"[dim]{escape(figures_line(result))}[/]")
    if result.error and errors:
        console.print(f"[bold red]error:[/] {escape(result.error)}")
        if result.error_hint:
            console.print(f"[dim]hint: {escape(result.error_hint)}[/]")


__all__ = ["ReplyStream", "figures_line", "print_figures"]
