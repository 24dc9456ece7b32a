"""One way to run a Genie query on the phone and get one typed record back.

Chat, bench and doctor's probe all go through an ``Engine`` (``engine.py``): ``ProcessEngine``
(one genie-t2t-run per query) or ``SessionEngine`` (one genie-app keeps the dialog alive for
a whole chat, ``session.py``). The record (``record.py``) holds the stdout events with host
timestamps, exit code, stderr, Genie's profile and the failure diagnosis; features only
interpret it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwenchat.errors import UsageError
from qwenchat.runner.phone_bundle import PhoneBundle
from qwenchat.runner.process import ProcessEngine

if TYPE_CHECKING:
    from qwenchat.device.base import Device
    from qwenchat.layout import PhoneLayout
    from qwenchat.runner.engine import Engine

ENGINE_KINDS = ("auto", "session", "process")


def open_engine(device: Device, layout: PhoneLayout | None = None, kind: str = "process") -> Engine:
    """The engine ``kind`` for the bundle pushed in ``layout`` on ``device``.

    ``session``: genie-app must answer its probe (SessionUnavailable, with a hint, if not);
    ``auto``: the session engine when its probe passes, else the per-query engine with a
    note saying why (``engine.notes``); ``process``: one genie-t2t-run per query.
    """
    if kind not in ENGINE_KINDS:
        raise UsageError(f"unknown engine {kind!r}", hint="Use auto, session or process.")
    bundle = PhoneBundle(device, layout)
    if kind in ("auto", "session"):
        from qwenchat.runner.session import SessionUnavailable, open_session

        try:
            return open_session(bundle)
        except SessionUnavailable as exc:
            if kind == "session":
                raise
            engine = ProcessEngine(bundle)
            engine.sweep_stale()
            _refuse_second_load(engine)
            engine.notes.append(
                f"genie-app cannot keep the model loaded ({exc.message}): "
                "every turn starts genie-t2t-run and loads the model again"
            )
            return engine
    engine = ProcessEngine(bundle)
    engine.sweep_stale()
    _refuse_second_load(engine)
    return engine


def _refuse_second_load(engine: ProcessEngine) -> None:
    """genie-t2t-run loads the model again: not beside another chat's loaded one."""
    from qwenchat.runner.occupancy import refuse_second_load

    refuse_second_load(engine.device, engine.layout.tmp_dir, engine.owner_tag)


def sweep_stale(device: Device, layout: PhoneLayout | None = None) -> int:
    """End the genie-app sessions a killed qwenchat of this host left on the phone; returns
    how many. (Opening any engine does this too.)"""
    from qwenchat.layout import PhoneLayout as _Layout
    from qwenchat.runner.session_phone import sweep_orphans

    return len(sweep_orphans(device, (layout or _Layout()).tmp_dir))


def sweep_dead_runs(device: Device, layout: PhoneLayout | None = None) -> None:
    """What runs of this computer that are gone (killed) left on the phone: their genie-app
    sessions ended, their Genie stopped, their files and dialog states removed. Every engine
    does this when it opens; commands that open none (push-assets) call it. Best effort: a
    failure here must not stop the command."""
    from qwenchat.errors import QwenchatError
    from qwenchat.layout import PhoneLayout as _Layout
    from qwenchat.runner.leftovers import sweep
    from qwenchat.runner.session_phone import sweep_orphans

    layout = layout or _Layout()
    try:
        sweep_orphans(device, layout.tmp_dir)
        sweep(device, layout.tmp_dir, layout.states_dir)
    except QwenchatError:
        pass


def stop_sessions(device: Device, layout: PhoneLayout | None = None) -> int:
    """End every genie-app session on the phone, whoever started it (`qwenchat clean`)."""
    from qwenchat.layout import PhoneLayout as _Layout
    from qwenchat.runner.session_phone import stop_all_sessions

    return len(stop_all_sessions(device, (layout or _Layout()).tmp_dir))
