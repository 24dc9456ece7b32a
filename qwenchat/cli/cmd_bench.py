"""`qwenchat bench`: TTFT and decode tok/s across prompt lengths, against the published range."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qwenchat.cli import checked
from qwenchat.cli.options import (
    DEFAULT_WORK_DIR,
    AdbServers,
    AllPhones,
    Connect,
    DeviceDir,
    Model,
    Serials,
    Transport,
)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    prompt_len: Annotated[
        str | None,
        typer.Option(
            "-p", "--prompt-len",
            help="Prompt lengths in tokens: 128..4096 (powers of two), 128..4096:512, 128,1000. "
            "Default: 128..the model's context (Qwen2: 128..4096; Llama-v2-7B-Chat: 128..1024).",
            show_default=False,
        ),
    ] = None,
    gen_len: Annotated[int, typer.Option("-n", "--gen-len", help="Tokens to generate.")] = 128,
    repetitions: Annotated[
        int, typer.Option("-r", "--repetitions", help="Measured trials per length.")
    ] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="Unmeasured trials per length.")] = 1,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed for prompts and sampler.",
                     callback=checked.whole(0, 2**32 - 1)),
    ] = None,
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
        float | None,
        # A phone never cools below the room: a bound under 25 °C would wait forever.
        typer.Option("--max-temp", help="Never start a trial above this °C (25-125).",
                     callback=checked.number(25, 125, unit="°C")),
    ] = None,
    max_temp_action: Annotated[
        str, typer.Option("--max-temp-action", help="Above --max-temp: pause (cool) or stop.")
    ] = "pause",
    cooldown_max_wait: Annotated[
        float,
        typer.Option("--cooldown-max-wait", help="Longest wait between trials (s).",
                     callback=checked.number(0, 86400, unit="seconds")),
    ] = 300.0,
    output: Annotated[
        str, typer.Option("-o", "--output", help="table, json, jsonl, md or csv.")
    ] = "table",
    json_output: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    plot: Annotated[
        str | None,
        typer.Option("--plot", help="Also write a plot: FILE.png or FILE.svg (needs matplotlib)."),
    ] = None,
    load_timeout: Annotated[
        float | None,
        typer.Option(
            "--load-timeout", metavar="S",
            help="Seconds Genie may take to load the model before the first token (plus the "
            "prompt at a floor rate). Default: derived.",
        ),
    ] = None,
    stall_timeout: Annotated[
        float | None,
        typer.Option(
            "--stall-timeout", metavar="S",
            help="Seconds without a token, once the reply flows, before Genie counts as stuck.",
        ),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Argument(
            help="With --resume: the run to finish: an id, a unique prefix or 'last' "
            "(default: the latest unfinished one)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish an interrupted run: --resume [RUN_ID].")
    ] = False,
    show: Annotated[
        str | None,
        typer.Option("--show", help="Print the report of a stored run (id, prefix or 'last')."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="process: a fresh genie-t2t-run per trial (the model loads every trial, as "
            "the published figures were measured); session: a warm dialog (one genie-app, "
            "model loaded once, dialog reset between trials), labelled so in every output.",
        ),
    ] = "process",
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="genie: Genie's end-to-end figures (default); parts: each part's NPU time "
            "with the QAIRT tools, as AI Hub profiles them (not available: says why).",
        ),
    ] = "genie",
    model: Model = None,
    serials: Serials = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    all_phones: AllPhones = False,
    adb_servers: AdbServers = None,
) -> int:
    """Measure TTFT and tokens/s across prompt lengths and compare with Qualcomm's figures.

    --all (or -s repeated, --adb-server): every phone's sweep at once, as one fleet run
    (--resume FLEET_ID finishes the phones that did not; --show FLEET_ID reports it)."""
    from qwenchat.bench.formats import parse_format
    from qwenchat.bench.parts import check_method
    from qwenchat.cli.options import one_serial, wants_fleet
    from qwenchat.errors import UsageError

    check_method(method)  # before the phone or the store is touched
    if json_output and output.strip().lower() not in ("table", "json"):
        raise UsageError(f"--json and -o {output} ask for two formats", hint="Give one of them.")
    if show is not None and (resume or run_id is not None):
        raise UsageError("--show prints a stored run; it cannot be combined with --resume",
                         hint="Run `qwenchat bench --show RUN` or `qwenchat bench --resume RUN`.")
    fmt = "json" if json_output else parse_format(output)
    if plot is not None:
        from qwenchat.bench.plot import FORMATS

        if not plot.lower().endswith(FORMATS):  # say so before an hour of trials
            raise UsageError(f"--plot {plot}: name the file .png or .svg")
    from qwenchat.bench.fleet_storage import is_fleet_ref

    fleet_ref = show if show is not None else (run_id if resume else None)
    if is_fleet_ref(fleet_ref) or (show is None and wants_fleet(serials, all_phones, adb_servers)):
        from qwenchat.cli.cmd_bench_fleet import bench_fleet

        return bench_fleet(
            show=show, resume=resume, run_id=run_id, fmt=fmt, plot=plot, serials=serials,
            all_phones=all_phones, adb_servers=adb_servers, connect=connect,
            transport=transport, device_dir=device_dir, model=model,
            options=dict(prompt_len=prompt_len, gen_len=gen_len, repetitions=repetitions,
                         warmup=warmup, seed=seed, cooldown=cooldown, max_temp_c=max_temp,
                         max_temp_action=max_temp_action, cooldown_max_wait_s=cooldown_max_wait,
                         protocol=protocol, load_timeout_s=load_timeout,
                         stall_timeout_s=stall_timeout, engine=engine),
        )  # fmt: skip
    serial = one_serial(serials)

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
            lengths=None if prompt_len is None else parse_lengths(prompt_len),
            gen_len=gen_len,
            repetitions=repetitions,
            warmup=warmup,
            seed=seed,
            cooldown=cooldown,
            max_temp_c=max_temp,
            max_temp_action=max_temp_action.strip().lower(),
            cooldown_max_wait_s=cooldown_max_wait,
            protocol=protocol.strip().lower(),
            load_timeout_s=load_timeout,
            stall_timeout_s=stall_timeout,
            model=model,
            engine=engine.strip().lower(),
        )
    if model is not None:
        from qwenchat.models.registry import get_model

        get_model(model)  # an unknown name is one line, before any phone is opened

    from qwenchat.bench.progress import SweepProgress
    from qwenchat.device.select import open_device

    progress = SweepProgress()
    device = open_device(serial=serial, connect=connect, transport=transport)
    with device, open_store() as store:
        storage = BenchStorage(store)
        try:
            if options is None:
                run_id = resume_run(
                    device, storage, run_id, model=model,
                    on_progress=progress.update, on_start=progress.start,
                )
            else:
                from qwenchat.assets.integrity import bundle_integrity
                from qwenchat.layout import PhoneLayout

                # A half-pushed or mixed bundle is refused before any trial is stored.
                bundle_integrity(device, PhoneLayout(device_dir)).require()
                run_id = new_run(
                    device, storage, options, work_dir=device_dir,
                    on_progress=progress.update, on_start=progress.start,
                )
        except BenchStopped as stopped:
            progress.close()
            _print_report(storage, stopped.run_id, fmt, plot)
            raise
        finally:
            progress.close()
        _print_report(storage, run_id, fmt, plot)
        return _exit_status(storage, run_id)


def _exit_status(storage, run_id: str) -> int:  # noqa: ANN001
    """0 clean, 1 a length without a successful trial, 3 some trials failed (exit_status)."""
    from qwenchat.bench.exit_status import run_verdict

    verdict = run_verdict(storage.get_run(run_id))
    if verdict.message:
        from qwenchat.cli.errors import report_error

        if verdict.code == 1:
            report_error(verdict.message, verdict.hint)
        else:
            print(f"warning: {verdict.message}", file=sys.stderr)
    return verdict.code


def _print_report(storage, run_ref: str, fmt: str, plot: str | None = None) -> int:  # noqa: ANN001
    from qwenchat.bench.formats import write_report

    stored = storage.get_run(run_ref)
    # table mode: report.py's table, the roofline line and the terminal chart under it
    report = write_report(stored, fmt, sys.stdout)
    if plot is not None:
        from qwenchat.bench.plot import write_plot

        write_plot(report, plot, created_at=stored.created_at)
        print(f"plot written to {plot}", file=sys.stderr)
    return 0
