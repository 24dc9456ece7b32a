"""`qwenchat serve`: the phone's model behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qwenchat.cli.options import DEFAULT_WORK_DIR, Connect, DeviceDir, Model, Transport


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (beyond loopback: --api-key).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="QWENCHAT_API_KEY",
            show_envvar=True,
            help="Key clients must send (Authorization: Bearer KEY).",
        ),
    ] = None,
    queue: Annotated[
        int,
        typer.Option("--queue", help="Requests that may wait while every phone is busy."),
    ] = 16,
    drain: Annotated[
        float,
        typer.Option(
            "--drain-timeout",
            help="Seconds in-flight replies may take to finish on SIGTERM/Ctrl-C "
            "(then they are cut and stored).",
        ),
    ] = 30.0,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto: one genie-app per phone keeps the model and the conversation's KV "
            "cache between requests when the phone's passes its probe; session; process.",
        ),
    ] = "auto",
    serials: Annotated[
        list[str] | None,
        typer.Option(
            "-s",
            "--serial",
            envvar="ANDROID_SERIAL",
            show_envvar=True,
            help="Phone to serve from: a serial or HOST:PORT; repeat it for several phones "
            "(default: the only one attached).",
        ),
    ] = None,
    model: Model = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
) -> int:
    """Serve the phone's model as OpenAI's chat completions API (/v1/chat/completions,
    /v1/models, /health). A follow-up request that extends the conversation a phone holds
    prefills only its new turn."""
    from qwenchat.errors import UsageError
    from qwenchat.runner import ENGINE_KINDS

    if engine not in ENGINE_KINDS:
        raise UsageError(f"unknown --engine {engine!r}", hint="Use auto, session or process.")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {port}")
    if queue < 0:
        raise UsageError(f"--queue must be 0 or more, not {queue}")
    if not 0 < drain <= 3600:
        raise UsageError(f"--drain-timeout must be above 0 and at most 3600 s, not {drain:g}")
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty", hint="Give a key, or leave the option out.")
    from qwenchat.serve.server import bind, check_exposure

    check_exposure(host, api_key)
    wanted = list(dict.fromkeys(serials or [])) or [None]
    if connect and len(wanted) > 1:
        raise UsageError("--connect reaches one phone; with several -s, give their HOST:PORTs")
    from qwenchat.models.registry import get_model

    spec = get_model(model) if model is not None else None
    sock = bind(host, port)  # before the phones: a taken port fails at once
    import contextlib

    from qwenchat.store import open_store

    with contextlib.ExitStack() as stack:
        slots = []
        try:
            for serial in wanted:
                # One store connection per phone: each phone's worker thread writes its own
                # conversation's rows (one sqlite connection's transactions cannot interleave).
                store = stack.enter_context(open_store())
                slot = _open_slot(serial, connect, transport, device_dir, spec, store, engine)
                slots.append(slot)
                twin = next((o for o in slots[:-1] if o.serial == slot.serial), None)
                if twin is not None:
                    # Two sessions (two loaded models) on one phone would fight for its memory.
                    raise UsageError(
                        f"-s {serial} is the phone {slot.serial} again",
                        hint="Give each phone once.",
                    )
            from qwenchat.serve.app import ServeConfig
            from qwenchat.serve.pool import Pool
            from qwenchat.serve.server import serve as run_server

            pool = Pool(slots, limit=queue)
            _announce(host, sock.getsockname()[1], slots, api_key is not None)
            run_server(pool, sock, ServeConfig(api_key=api_key), drain_s=drain)
        finally:
            for slot in slots:  # already closed by the drain, unless it was forced
                slot.close()
            sock.close()
    return 0


def _open_slot(serial, connect, transport, device_dir, spec, store, engine):  # noqa: ANN001, ANN202
    from qwenchat.assets.integrity import bundle_integrity
    from qwenchat.chat.session import open_chat_session
    from qwenchat.device.select import open_device
    from qwenchat.layout import PhoneLayout
    from qwenchat.serve.phones import PhoneSlot

    def reopen():  # noqa: ANN202 - the same phone again, after it was lost
        return open_device(serial=serial, connect=connect, transport=transport)

    device = reopen()
    try:
        bundle_integrity(device, PhoneLayout(device_dir)).require()
        session = open_chat_session(
            device, work_dir=device_dir, store=store, model=spec, keep_state=True,
            engine=engine,
        )
    except BaseException:
        device.close()
        raise
    return PhoneSlot(session, reopen=reopen)


def _announce(host: str, port: int, slots, keyed: bool) -> None:  # noqa: ANN001
    shown = f"[{host}]" if ":" in host else host
    lines = [f"serving on http://{shown}:{port}/v1 (OpenAI chat completions)"]
    for slot in slots:
        sim = " SIMULATED" if slot.simulated else ""
        lines.append(
            f"  {slot.serial}: {slot.model}, context {slot.ctx_size} tokens, "
            f"engine {slot.session.engine.name}{sim}"
        )
        lines.extend(f"  note: {note}" for note in slot.session.engine.notes)
    lines.append("  key required (Authorization: Bearer KEY)" if keyed else "  no key required")
    lines.append("Ctrl-C or SIGTERM stops it (replies in flight finish first).")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
