"""`qwenchat run`: chat with the model on the phone, or ask one question."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from qwenchat.cli.options import (
    DEFAULT_WORK_DIR,
    Connect,
    DeviceDir,
    Json,
    Model,
    Serial,
    Transport,
)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    prompt: Annotated[
        str | None,
        typer.Argument(help="A question to answer and exit; '-' or piped stdin reads it there."),
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Most tokens per reply.")
    ] = None,
    temp: Annotated[float | None, typer.Option("--temp", help="Sampling temperature.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Top-k sampling.")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Top-p sampling.")] = None,
    load_timeout: Annotated[
        float | None,
        typer.Option(
            "--load-timeout",
            help="Seconds to wait for the first token (model load + prompt). "
            "Default: derived from the prompt length.",
        ),
    ] = None,
    stall_timeout: Annotated[
        float | None,
        typer.Option(
            "--stall-timeout", help="Seconds without a token before Genie is called stuck."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto: keep the model loaded in one genie-app for the chat when the phone's "
            "passes its probe, else one genie-t2t-run per turn (a question: per turn); "
            "session; process.",
        ),
    ] = "auto",
    model: Model = None,
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    json_output: Json = False,
) -> int:
    """Chat with the model on the phone (interactive), or answer one question.

    Exit codes of a question: 0 answered, 1 Genie failed, 75 the phone was lost, 124 Genie
    timed out, 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the reply so far is saved in each case).
    """
    started = time.monotonic()
    from qwenchat.chat.user_input import validate_setting, validate_timeout
    from qwenchat.models.registry import get_model
    from qwenchat.runner.request import SamplerSettings

    values = {"temp": temp, "top_k": top_k, "top_p": top_p, "seed": seed, "max_tokens": max_tokens}
    settings = SamplerSettings(
        **{key: validate_setting(key, v) for key, v in values.items() if v is not None}
    )
    load_s = validate_timeout("--load-timeout", load_timeout)
    stall_s = validate_timeout("--stall-timeout", stall_timeout)
    spec = get_model(model) if model is not None else None
    from qwenchat.runner import ENGINE_KINDS

    if engine not in ENGINE_KINDS:
        from qwenchat.errors import UsageError

        raise UsageError(f"unknown --engine {engine!r}", hint="Use auto, session or process.")
    text = _one_shot_text(prompt)
    if text is None and json_output:
        from qwenchat.errors import UsageError

        raise UsageError("--json needs a question", hint='qwenchat run --json "question"')
    if text is not None:
        from qwenchat.chat.user_input import check_message

        check_message(text, "the question")
    from qwenchat.models.user_text import notice

    for what, value in (("the question", text), ("--system", system)):
        line = notice(value, spec, what=what) if value else None
        if line:
            sys.stderr.write(line + "\n")  # user text is sent as text, and the user is told
    # The template renderer is the slowest import of a turn: start it while the phone link
    # is set up (the tokenizer follows once the phone says which one).
    from qwenchat.chat.warmup import warm_up

    warm_up(None, spec)

    from qwenchat.device.select import open_device
    from qwenchat.store import open_store

    def reopen():  # noqa: ANN202 - the same selection, for a chat whose phone came back
        return open_device(serial=serial, connect=connect, transport=transport)

    device = reopen()
    with device, open_store() as store:
        from qwenchat.assets.integrity import bundle_integrity
        from qwenchat.chat.session import open_chat_session
        from qwenchat.layout import PhoneLayout

        # A half-pushed bundle, a mix of two, or a push at work: one line, before Genie runs.
        bundle_integrity(device, PhoneLayout(device_dir)).require()

        session = open_chat_session(
            device,
            work_dir=device_dir,
            system=system,
            settings=settings,
            store=store,
            model=spec,
            keep_state=text is None,  # a question leaves nothing on the phone
            # A question's tokenizer loads while Genie does (chat.deferred_count); a chat's
            # while the user types.
            warm=text is None,
            load_timeout=load_s,
            stall_timeout=stall_s,
            # One question gains nothing from a live dialog: auto runs it per turn.
            engine="process" if text is not None and engine == "auto" else engine,
        )
        if text is None:
            from qwenchat.chat.link import PhoneLink
            from qwenchat.chat.repl import Repl

            return Repl(session, link=PhoneLink(reopen)).run()
        try:
            return _answer(session, text, json_output, started)
        finally:
            session.end()  # a session engine's genie-app ends with the question


def _one_shot_text(prompt: str | None) -> str | None:
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        from qwenchat.chat.user_input import decode_input
        from qwenchat.errors import UsageError

        data = decode_input(sys.stdin.buffer.read(), "stdin")
        if not data.strip():
            raise UsageError("nothing on stdin to ask", hint='qwenchat run "question"')
        return data.rstrip("\n")
    return prompt


def _answer(session, text: str, json_output: bool, started: float) -> int:  # noqa: ANN001
    import json

    from qwenchat.chat.interrupt import cancel_on_interrupt
    from qwenchat.chat.outcome import StopReason
    from qwenchat.chat.render import ReplyStream, print_figures
    from qwenchat.chat.waiting import WaitNotice
    from qwenchat.cli.errors import report_error

    stream = None if json_output else ReplyStream(sys.stdout)
    # A SIGTERM/SIGHUP stops the phone's process, lets the partial reply be stored and
    # printed, then leaves this block as Terminated (exit 143/129).
    with cancel_on_interrupt(session), WaitNotice(session, sys.stderr) as notice:

        def on_text(piece: str) -> None:
            notice.text_arrived()  # the wait line goes before the reply starts
            if stream is not None:
                stream.write(piece)

        result = session.send(text, on_text, entered_at=started)
        if json_output:
            payload = {
                "conversation_id": session.session_id,
                "model": session.model_name,
                "reply": result.text,
                "stop_reason": result.stop.value,
                "prompt_mode": result.mode.value,
                "error": result.error,
                "device": {
                    "serial": session.info.serial,
                    "model": session.info.model,
                    "soc": session.info.soc,
                },
                "simulated": session.info.simulated,
                "engine": session.engine.name,
                "figures": result.figures.as_json(),
            }
            sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        else:
            assert stream is not None
            if result.text:
                stream.finish()
            if result.stop is not StopReason.FAILED:
                # Figures go to stderr so `qwenchat run "q" > answer.txt` keeps the reply only.
                print_figures(result, sys.stderr, errors=False)
        if result.error:
            saved = " (the reply so far is saved: `qwenchat history last`)" if result.text else ""
            report_error(result.error + saved, result.error_hint)
    return _EXIT_CODES.get(result.stop.value, 0)


# A question's exit code says how its reply ended (the error hierarchy's codes).
_EXIT_CODES = {"failed": 1, "device_lost": 75, "timed_out": 124, "cut": 130}
