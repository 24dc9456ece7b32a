"""What the phone holds: a model loaded by another chat's genie-app refuses a second load.

A genie-app session keeps a 5 GB model in the phone's memory for a whole chat; a second chat
(or a bench) on the same phone would load it again, which on a 16 GB phone fails or pushes
the first out. Each session leaves a pid file with its owner (``session_files``), so the
next engine to open reads them: sessions whose owner is gone were already ended by the sweep
(``sweep_orphans``), this process's own are fine, and any other live one refuses the load
with one line naming it (genie-app's pid, the qwenchat that started it, since when), as the
push lock names another push.
"""

from __future__ import annotations

import time

from qwenchat.errors import QwenchatError
from qwenchat.runner.session_files import Owner, SessionFiles
from qwenchat.runner.session_phone import list_sessions, runs_session
from qwenchat.shellwords import quote


class PhoneBusyError(QwenchatError):
    """Another chat holds a model in the phone's memory."""

    default_hint = (
        "End that chat first (`/exit` there), or end its genie-app with `qwenchat clean`; "
        "two models loaded at once do not fit a phone's memory."
    )


def refuse_second_load(device, tmp_dir: str, own_tag: str) -> None:  # noqa: ANN001 - Device
    """PhoneBusyError when a genie-app of another live qwenchat holds a model."""
    for entry in list_sessions(device, tmp_dir):
        if entry.owner == own_tag:
            continue
        owner = Owner.parse(entry.owner)
        if owner is not None and owner.gone():
            continue  # its genie-app is being ended by the sweep, never a reason to refuse
        if not runs_session(device, entry.pid, SessionFiles(tmp_dir, entry.session_id).fifo):
            continue  # a pid file whose genie-app is gone holds no model
        raise PhoneBusyError(f"another chat holds a model on this phone ({_describe(device, entry, owner)})")


def _describe(device, entry, owner: Owner | None) -> str:  # noqa: ANN001
    who = (
        f"started by qwenchat pid {owner.pid} on {owner.host}" if owner is not None
        else f"started by {entry.owner or 'an unknown owner'}"
    )
    times = device.shell(f"stat -c %Y {quote(entry.path)}; date +%s", timeout=10).text.split()
    since = ""
    if len(times) == 2 and all(t.isdigit() for t in times):
        started, now = int(times[0]), int(times[1])
        clock = time.strftime("%H:%M:%S", time.localtime(started))
        since = f", since {clock} ({max(0, now - started) // 60} min ago, phone clock)"
    return f"genie-app pid {entry.pid}, {who}{since}"
