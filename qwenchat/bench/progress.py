"""How a running sweep shows itself: a live bar on a terminal (trials done/total, the length
running now, ETA, the last trial's TTFT and tok/s), one plain line per trial when stderr is
a pipe or a file (a CI log keeps every trial, no control characters).

Progress goes to stderr; stdout keeps only the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from qwenchat.runner.outcome import Outcome

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from qwenchat.bench.records import TrialRecord
    from qwenchat.bench.runner import ProgressEvent


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _kind(event: ProgressEvent) -> str:
    return "warm-up" if event.slot.warmup else f"rep {event.slot.rep + 1}"


def trial_summary(trial: TrialRecord) -> str:
    """The trial in a few words (Rich markup): its figures, or why it failed."""
    g = trial.genie
    if trial.ok and g is not None:
        text = f"TTFT {g.ttft_ms:,.1f} ms · {g.decode_tok_s:.2f} tok/s [dim](genie)[/]"
        if trial.stop_reason not in (Outcome.MAX_TOKENS, Outcome.EOS):
            text += f" [yellow]{trial.stop_reason.label}[/]"
    else:
        text = f"[red]failed ({trial.stop_reason.label}): {escape(trial.error or '')}[/]"
    waited = trial.cooldown.waited_s if trial.cooldown is not None else 0.0
    if waited >= 0.5:
        text += f" [dim](cooled {waited:.0f} s first)[/]"
    return text


class SweepProgress:
    """Feeds on the runner's ProgressEvents. ``live`` None: a bar when the console is a
    terminal."""

    def __init__(self, console: Console | None = None, *, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal if live is None else live
        self._progress: Progress | None = None  # while the bar is shown
        self._task: TaskID | None = None
        self._last = "-"

    def start(self, run_id: str) -> None:
        self.console.print(f"[dim]bench run {run_id} (resume with --resume {run_id})[/]")

    def update(self, event: ProgressEvent) -> None:
        if self.live:
            self._update_bar(event)
        elif event.phase == "finished" and event.trial is not None:
            eta = "" if event.eta_s is None else f" · ETA {clock(event.eta_s)}"
            self.console.print(
                f"[{event.done}/{event.total}] {event.slot.length.tokens} tok {_kind(event)}: "
                f"{trial_summary(event.trial)}{eta}"
            )

    def _update_bar(self, event: ProgressEvent) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("· ETA {task.fields[eta]} · last {task.fields[last]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=event.total, completed=event.done,
                                                 eta="?", last=self._last)
        trial = event.trial
        if event.phase == "finished" and trial is not None:
            g = trial.genie
            if trial.ok and g is not None:
                self._last = f"TTFT {g.ttft_ms:,.1f} ms, {g.decode_tok_s:.2f} tok/s"
            else:
                self._last = f"failed ({trial.stop_reason.label})"
                # A failure stays on screen above the bar, whatever comes next.
                self._progress.console.print(
                    f"{event.slot.length.tokens} tok {_kind(event)}: {trial_summary(trial)}"
                )
        description = f"{event.slot.length.tokens} tok {_kind(event)}"
        assert self._task is not None  # added with the bar, above
        self._progress.update(
            self._task,
            completed=event.done,
            total=event.total,
            description=description,
            eta="?" if event.eta_s is None else clock(event.eta_s),
            last=escape(self._last),
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
