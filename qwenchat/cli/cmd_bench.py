"""`qwenchat bench`: TTFT and decode tok/s across prompt lengths, against the published range."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qwenchat.cli.options import DEFAULT_WORK_DIR, Connect, DeviceDir, Serial, Transport


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    prompt_len: Annotated[
        str,
        typer.Option(
            "-p", "--prompt-len",
            help="Prompt lengths in tokens: 128..4096 (powers of two), 128..4096:512, 128,1000.",
        ),
    ] = "128..4096",
    gen_len: Annotated[int, typer.Option("-n", "--gen-len", help="Tokens to generate.")] = 128,
    repetitions: Annotated[
        int, typer.Option("-r", "--repetitions", help="Measured trials per length.")
    ] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="Unmeasured trials per length.")] = 1,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for prompts and sampler.")] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="qualcomm: 1 warm-up, 25 trials, no cool-down, 128 tokens (AI Hub's method).",
        ),
    ] = "default",
    cooldown: Annotated[
        str,
        typer.Option("--cooldown", help="auto: wait for the phone to cool; or seconds (0: never)."),
    ] = "auto",
    max_temp: Annotated[
        float | None, typer.Option("--max-temp", help="Never start a trial above this °C.")
    ] = None,
    max_temp_action: Annotated[
        str, typer.Option("--max-temp-action", help="Above --max-temp: pause (cool) or stop.")
    ] = "pause",
    cooldown_max_wait: Annotated[
        float, typer.Option("--cooldown-max-wait", help="Longest wait between trials (s).")
    ] = 300.0,
    output: Annotated[
        str, typer.Option("-o", "--output", help="table, json, jsonl, md or csv.")
    ] = "table",
    json_output: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    plot: Annotated[
        str | None,
        typer.Option("--plot", help="Also write a plot: FILE.png or FILE.svg (needs matplotlib)."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Argument(help="With --resume: the run to finish (default: the latest one)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish an interrupted run: --resume [RUN_ID].")
    ] = False,
    show: Annotated[
        str | None, typer.Option("--show", help="Print the report of a stored run and exit.")
    ] = None,
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
) -> int:
    """Measure TTFT and tokens/s across prompt lengths and compare with Qualcomm's figures."""
    from qwenchat.bench.formats import parse_format
    from qwenchat.errors import UsageError

    fmt = "json" if json_output else parse_format(output)
    if plot is not None:
        from qwenchat.bench.plot import FORMATS

        if not plot.lower().endswith(FORMATS):  # say so before an hour of trials
            raise UsageError(f"--plot {plot}: name the file .png or .svg")

    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    if show is not None:
        with open_store() as store:
            return _print_report(BenchStorage(store), show, fmt, plot)

    from qwenchat.bench.runner import BenchOptions, BenchStopped, new_run, resume_run
    from qwenchat.bench.sweep import parse_lengths

    if run_id is not None and not resume:
        raise UsageError(
            f"unexpected argument {run_id!r}", hint=f"Did you mean --resume {run_id}?"
        )
    options = None
    if not resume:
        options = BenchOptions(
            lengths=parse_lengths(prompt_len),
            gen_len=gen_len,
            repetitions=repetitions,
            warmup=warmup,
            seed=seed,
            cooldown=cooldown,
            max_temp_c=max_temp,
            max_temp_action=max_temp_action.strip().lower(),
            cooldown_max_wait_s=cooldown_max_wait,
            protocol=protocol.strip().lower(),
        )

    from qwenchat.device.select import open_device

    progress = _Progress()
    device = open_device(serial=serial, connect=connect, transport=transport)
    with device, open_store() as store:
        storage = BenchStorage(store)
        try:
            if options is None:
                run_id = resume_run(
                    device, storage, run_id,
                    on_progress=progress.update, on_start=progress.start,
                )
            else:
                run_id = new_run(
                    device, storage, options, work_dir=device_dir,
                    on_progress=progress.update, on_start=progress.start,
                )
        except BenchStopped as stopped:
            progress.close()
            _print_report(storage, stopped.run_id, fmt, plot)
            raise
        progress.close()
        return _print_report(storage, run_id, fmt, plot)


def _print_report(storage, run_id: str, fmt: str, plot: str | None = None) -> int:  # noqa: ANN001
    from qwenchat.bench.formats import write_report
    from qwenchat.errors import UsageError

    stored = storage.load_run(run_id)
    if stored is None:
        raise UsageError(f"no bench run {run_id!r} in the store")
    # table mode: report.py's table, the roofline line and the terminal chart under it
    report = write_report(stored, fmt, sys.stdout)
    if plot is not None:
        from qwenchat.bench.plot import write_plot

        write_plot(report, plot, created_at=stored.created_at)
        print(f"plot written to {plot}", file=sys.stderr)
    return 0


class _Progress:
    """One line per trial on stderr, with an ETA (stdout keeps only the report)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def start(self, run_id: str) -> None:
        self.console.print(f"[dim]bench run {run_id} (resume with --resume {run_id})[/]")

    def update(self, event) -> None:  # noqa: ANN001 - runner.ProgressEvent
        slot, trial = event.slot, event.trial
        kind = "warm-up" if slot.warmup else f"rep {slot.rep + 1}"
        what = "-"
        if trial is not None:
            genie = (trial.result or {}).get("genie") or {}
            if trial.ok and genie:
                what = (
                    f"TTFT {genie['ttft_ms']:,.1f} ms · {genie['decode_tok_s']:.2f} tok/s "
                    "[dim](genie)[/]"
                )
            else:
                what = f"[red]failed: {trial.error or trial.stop_reason}[/]"
            waited = (trial.cooldown or {}).get("waited_s") or 0.0
            if waited >= 0.5:
                what += f" [dim](cooled {waited:.0f} s first)[/]"
        eta = "" if event.eta_s is None else f" · ETA {_clock(event.eta_s)}"
        self.console.print(
            f"[{event.done}/{event.total}] {slot.length.tokens} tok {kind}: {what}{eta}"
        )

    def close(self) -> None:
        pass


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
