"""`qwenchat serve`: the phone's model behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

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

if TYPE_CHECKING:
    from qwenchat.device.base import Device


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
    serials: Serials = None,
    all_phones: AllPhones = False,
    adb_servers: AdbServers = None,
    model: Model = None,
    connect: Connect = None,
    transport: Transport = "auto",
    device_dir: DeviceDir = DEFAULT_WORK_DIR,
) -> int:
    """Serve the phone's model as OpenAI's chat completions API (/v1/chat/completions,
    /v1/models, /health). A follow-up request that extends the conversation a phone holds
    prefills only its new turn. Several phones: -s repeated, --all (the phones that hold a
    whole bundle), --adb-server HOST:PORT for another computer's phones."""
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
    openers = _phone_openers(serials, all_phones, adb_servers, connect, transport)
    from qwenchat.models.registry import get_model

    spec = get_model(model) if model is not None else None
    sock = bind(host, port)  # before the phones: a taken port fails at once
    import contextlib

    from qwenchat.errors import BundleError, NoDeviceError
    from qwenchat.store import open_store

    with contextlib.ExitStack() as stack:
        slots = []
        try:
            for serial, reopen in openers:
                # One store connection per phone: each phone's worker thread writes its own
                # conversation's rows (one sqlite connection's transactions cannot interleave).
                store = stack.enter_context(open_store())
                try:
                    slot = _open_slot(reopen, device_dir, spec, store, engine)
                except BundleError as exc:
                    if not all_phones:
                        raise
                    # --all means the phones that hold the model: the others are one line.
                    sys.stderr.write(f"skipped {serial}: {exc.message}\n")
                    continue
                slots.append(slot)
                twin = next((o for o in slots[:-1] if o.serial == slot.serial), None)
                if twin is not None:
                    # Two sessions (two loaded models) on one phone would fight for its memory.
                    raise UsageError(
                        f"-s {serial} is the phone {slot.serial} again",
                        hint="Give each phone once.",
                    )
            if not slots:
                raise NoDeviceError(
                    "no phone reached holds a whole bundle to serve from",
                    "Push one first: qwenchat push-assets --all --bundle DIR",
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


def _phone_openers(
    serials: list[str] | None,
    all_phones: bool,
    adb_servers: list[str] | None,
    connect: str | None,
    transport: str,
) -> list[tuple[str, Callable[[], Device]]]:
    """Each phone to serve from, by name, with how to open it (again, after it was lost).

    One phone (no -s, or one plain -s) is opened as `run` opens it; several, --all or
    another computer's adb server go through the phone set every fleet command resolves."""
    from qwenchat.cli.options import one_serial, wants_fleet
    from qwenchat.errors import UsageError

    if not wants_fleet(serials, all_phones, adb_servers):
        from qwenchat.device.select import open_device

        serial = one_serial(serials)
        return [(serial or "the phone",
                 lambda: open_device(serial=serial, connect=connect, transport=transport))]
    if connect:
        raise UsageError("--connect reaches one phone; with several -s, give their HOST:PORTs")
    from qwenchat.device.phoneset import PhoneRef, ServerProblem, open_phone, resolve_phone_set

    def say(problem: ServerProblem) -> None:
        sys.stderr.write(f"adb server {problem.server} did not answer: {problem.message}\n")

    named = [s for s in serials or [] if s.strip()]
    if len(set(named)) < len(named):
        raise UsageError("a phone is named twice with -s", hint="Give each phone once.")
    phones = resolve_phone_set(
        serials, all_phones, adb_servers, transport=transport, on_problem=say
    )

    def opener(ref: PhoneRef) -> Callable[[], Device]:
        return lambda: open_phone(ref)

    return [(ref.name, opener(ref)) for ref in phones]


def _open_slot(reopen, device_dir, spec, store, engine):  # noqa: ANN001, ANN202
    from qwenchat.assets.integrity import bundle_integrity
    from qwenchat.chat.session import open_chat_session
    from qwenchat.layout import PhoneLayout
    from qwenchat.serve.phones import PhoneSlot

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
