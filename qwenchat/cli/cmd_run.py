"""`qwenchat run`: chat with Qwen2-7B-Instruct on the phone, or ask one question."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qwenchat.cli.options import DEFAULT_WORK_DIR, Connect, DeviceDir, Json, Serial, Transport


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
    serial: Serial = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
    json_output: Json = False,
) -> int:
    """Chat with the model on the phone (interactive), or answer one question."""
    from qwenchat.chat.session import SamplerSettings, validate_setting

    values = {"temp": temp, "top_k": top_k, "top_p": top_p, "seed": seed, "max_tokens": max_tokens}
    settings = SamplerSettings(
        **{key: validate_setting(key, v) for key, v in values.items() if v is not None}
    )
    text = _one_shot_text(prompt)
    if text is None and json_output:
        from qwenchat.errors import UsageError

        raise UsageError("--json needs a question", hint='qwenchat run --json "question"')

    from qwenchat.device.select import open_device
    from qwenchat.store import open_store

    device = open_device(serial=serial, connect=connect, transport=transport)
    with device, open_store() as store:
        from qwenchat.chat.session import open_chat_session

        session = open_chat_session(
            device, work_dir=device_dir, system=system, settings=settings, store=store
        )
        if text is None:
            from qwenchat.chat.repl import Repl

            return Repl(session).run()
        return _answer(session, text, json_output)


def _one_shot_text(prompt: str | None) -> str | None:
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        data = sys.stdin.read()
        if not data.strip():
            from qwenchat.errors import UsageError

            raise UsageError("nothing on stdin to ask", hint='qwenchat run "question"')
        return data.rstrip("\n")
    return prompt


def _answer(session, text: str, json_output: bool) -> int:  # noqa: ANN001
    import json

    from qwenchat.chat.interrupt import cancel_on_interrupt
    from qwenchat.chat.render import ReplyStream, print_figures
    from qwenchat.chat.session import StopReason

    stream = None if json_output else ReplyStream(sys.stdout)
    with cancel_on_interrupt(session):
        result = session.send(text, None if stream is None else stream.write)
    if json_output:
        payload = {
            "conversation_id": session.session_id,
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
            "figures": result.figures.as_json(),
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        assert stream is not None
        if result.text:
            stream.finish()
        if result.stop is not StopReason.ERROR:
            # Figures go to stderr so `qwenchat run "q" > answer.txt` keeps only the reply.
            print_figures(result, sys.stderr)
    if result.stop is StopReason.ERROR:
        from qwenchat.cli.errors import report_error

        report_error(result.error or "genie-t2t-run failed", result.error_hint)
        return 1
    if result.stop is StopReason.CUT:
        return 130
    return 0
