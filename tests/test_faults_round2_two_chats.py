"""Issue 31, item 7: two chats on one phone. The phone holds one model: a second load (a second
session chat, or per-turn genie-t2t-run beside it) is refused with one line naming the first
chat (genie-app's pid, the qwenchat that started it, since when); a genie-app whose owner is
dead is ended first, never a reason to refuse.

Failure modes, each with its test: a second chat loads a second model without a word; the
refusal blames a chat whose qwenchat was killed. The first chat is a real `qwenchat run` in a
terminal (a pty), killed for real with SIGKILL; oracles are the phone's process table and the
hand-written words.
"""

from __future__ import annotations

import os
import re
import signal
import socket

import pytest
from test_chat_interactive import PROMPT, Terminal
from test_session_chat import genie_apps

from qwenchat.chat.session import SamplerSettings, open_chat_session
from qwenchat.runner.occupancy import PhoneBusyError


def _first_chat(emu) -> Terminal:
    env = dict(os.environ, COLUMNS="200", LINES="40", TERM="xterm", LC_ALL="C.UTF-8")
    term = Terminal(["run", "--connect", emu.address, "--transport", "direct", "--engine",
                     "session", "--max-tokens", "200"], env)  # fmt: skip
    term.read_until(PROMPT)
    term.type("hello")  # the model is loaded now
    term.read_until(PROMPT)
    return term


@pytest.mark.parametrize("engine", ["session", "auto", "process"])
def test_a_second_chat_is_refused_naming_the_first(bundled_phone, engine):
    emu, dev = bundled_phone()
    term = _first_chat(emu)
    try:
        [app_pid] = genie_apps(dev)
        with pytest.raises(PhoneBusyError) as info:
            open_chat_session(dev, engine=engine, settings=SamplerSettings(max_tokens=8))
        message = info.value.message
        host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
        assert message.startswith(
            f"another chat holds a model on this phone (genie-app pid {app_pid}, started by "
            f"qwenchat pid {term.proc.pid} on {host}, since "
        ), message
        assert re.search(r"since \d\d:\d\d:\d\d \(0 min ago, phone clock\)\)$", message), message
        assert "`qwenchat clean`" in info.value.hint
        assert genie_apps(dev) == [app_pid]  # nothing loaded a second model
        term.type("/exit")
        assert term.proc.wait(30) == 0
    finally:
        term.close()
    # The first chat ended: the phone holds nothing, a new chat loads.
    session = open_chat_session(dev, engine=engine, settings=SamplerSettings(max_tokens=8))
    try:
        assert session.send("now it is my turn").error is None
    finally:
        session.end()


def test_a_genie_app_whose_chat_was_killed_is_ended_not_a_reason_to_refuse(bundled_phone):
    emu, dev = bundled_phone()
    term = _first_chat(emu)
    try:
        first = genie_apps(dev)
        term.proc.send_signal(signal.SIGKILL)
        term.proc.wait(30)
    finally:
        term.close()
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=8))
    try:
        assert session.send("the phone is mine").error is None
        assert not set(first) & set(genie_apps(dev))  # the dead chat's genie-app was ended
        assert len(genie_apps(dev)) == 1
    finally:
        session.end()


def test_a_push_during_a_chat_is_noticed_and_said(bundled_phone, synthetic_bundle, tmp_path):
    """The phone's bundle is replaced between two turns (the same model, another config):
    the next turn runs on the new bundle (a new genie-app, a model load) and the chat says
    why, once; without this the old genie-app kept answering from the old model."""
    import io

    from test_session_chat import count

    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.chat.lines import LineReader
    from qwenchat.chat.repl import Repl
    from qwenchat.layout import PhoneLayout

    emu, dev = bundled_phone()
    plan_b = plan_bundle(synthetic_bundle.bundle, synthetic_bundle.qairt, "SM8750",
                         tokenizer=synthetic_bundle.tokenizer, seed=7)  # fmt: skip
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=200))
    seen: dict[str, list[int]] = {}

    def lines():  # noqa: ANN202
        yield "hello"
        seen["before"] = genie_apps(dev)
        push_assets(dev, plan_b, PhoneLayout(), overlap=False)
        yield "and after the push?"
        seen["after"] = genie_apps(dev)
        yield "once more"

    it = lines()

    def typed(prompt: str) -> str:  # the next line, when the chat asks for it
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    Repl(session, reader=LineReader(typed), out=out, confirm=lambda q: False).run()
    screen = " ".join(out.getvalue().split())
    note = ("note: the bundle on the phone changed during this chat (a push): this turn runs "
            "on the new one (a model load) and sends the whole conversation again")  # fmt: skip
    assert screen.count(note) == 1, screen
    assert count(emu, "dialog create") == 2, screen  # loaded again, once
    assert seen["before"] and not set(seen["before"]) & set(seen["after"])
    assert "stop: error" not in screen
