"""Chat on a live session (one genie-app for the whole chat) on the emulated phone.

Oracles: the phone's process table, the emulated phone's command log, hand-written texts,
the store's rows read with sqlite3.
"""

from __future__ import annotations

import io
import sqlite3
import threading

from qwenchat.chat.lines import LineReader
from qwenchat.chat.render import figures_line
from qwenchat.chat.repl import Repl
from qwenchat.chat.session import PromptMode, SamplerSettings, StopReason, open_chat_session
from qwenchat.cli import app
from qwenchat.cli.errors import run_app
from qwenchat.emulator.commandlog import read_records


def genie_apps(dev) -> list[int]:
    pids = []
    for line in dev.shell("ps -A -o PID,ARGS").text.splitlines():
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and args.strip().startswith("genie-app"):
            pids.append(int(pid))
    return pids


def count(emu, words: str) -> int:
    return sum(
        words in r["what"] for r in read_records(emu.root) if r.get("kind") in ("shell", "stdin") and "what" in r
    )


def _scripted(lines: list[str]) -> LineReader:
    it = iter(lines)

    def fake_input(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return LineReader(fake_input)


def test_a_chat_keeps_its_context_in_the_live_dialog(bundled_phone, tmp_path):
    from qwenchat.store import open_store

    emu, dev = bundled_phone()
    store = open_store(tmp_path / "chat.db")
    session = open_chat_session(
        dev, engine="session", store=store, settings=SamplerSettings(max_tokens=12)
    )
    try:
        assert session.engine.name == "session"
        results = [session.send(text) for text in ("first question", "tell me more", "and more!")]
        assert [r.mode for r in results] == [PromptMode.REBUILD, PromptMode.FOLLOWUP, PromptMode.FOLLOWUP]
        assert all(r.stop is not StopReason.FAILED for r in results)
        assert len(genie_apps(dev)) == 1 and count(emu, "dialog create") == 1
        # Follow-ups prefill only the new turn: equal-length messages, equal counts (flat).
        tokens = [r.figures.genie_prompt_tokens for r in results]
        assert tokens[1] == tokens[2] < tokens[0] + tokens[1]
        # The load is shown once, on the reply that waited for it.
        assert results[0].figures.host_load_s is not None
        assert "(once per session)" in figures_line(results[0])
        assert all(r.figures.host_load_s is None for r in results[1:])
        assert all("(warm dialog)" in figures_line(r) for r in results[1:])
        # /clear: the same genie-app, its dialog reset, no second load.
        session.clear()
        fresh = session.send("a new topic")
        assert fresh.mode is PromptMode.REBUILD and fresh.figures.host_load_s is None
        assert count(emu, "dialog reset qwenchat") == 1 and count(emu, "dialog create") == 1
    finally:
        session.end()
    assert genie_apps(dev) == []  # the chat's end ends genie-app
    rows = sqlite3.connect(tmp_path / "chat.db").execute(
        "SELECT engine, host_load_s IS NOT NULL FROM chat_replies ORDER BY id"
    ).fetchall()
    store.close()
    assert rows == [("session", 1), ("session", 0), ("session", 0), ("session", 0)]


def _cut(session, text: str):
    def on_text(_: str, seen=[]) -> None:  # noqa: B006 - per call: a fresh list each _cut
        seen.append(1)
        if len(seen) == 2:
            threading.Thread(target=session.cancel).start()

    return session.send(text, on_text)


def test_ctrl_c_on_an_old_build_kills_and_the_next_turn_rebuilds(bundled_phone):
    emu, dev = bundled_phone(profile={"genie_app_build": "old", "decode_tok_s": 20})
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=300))
    try:
        session.send("hello")
        before = genie_apps(dev)
        cut = _cut(session, "write a long story")
        assert cut.stop is StopReason.CUT
        assert not set(before) & set(genie_apps(dev))  # that genie-app is gone
        session.update_settings(max_tokens=8)
        again = session.send("shorter please")
        assert again.mode is PromptMode.REBUILD  # from the transcript
        assert again.figures.host_load_s is not None  # a new genie-app loaded the model
        assert again.stop is not StopReason.FAILED
    finally:
        session.end()
    assert genie_apps(dev) == []


def test_ctrl_c_on_a_new_build_aborts_without_a_second_load(bundled_phone):
    emu, dev = bundled_phone(profile={"genie_app_build": "new", "decode_tok_s": 20})
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=300))
    try:
        session.send("hello")
        pids = genie_apps(dev)
        cut = _cut(session, "write a long story")
        assert cut.stop is StopReason.CUT
        assert genie_apps(dev) == pids and count(emu, "dialog abort qwenchat") == 1
        again = session.send("shorter please")
        assert again.mode is PromptMode.REBUILD and again.figures.host_load_s is None
        assert count(emu, "dialog create") == 1
    finally:
        session.end()


def test_the_chat_says_which_engine_runs_and_a_fallback_once(bundled_phone):
    emu, dev = bundled_phone()
    assert dev.shell("rm /data/local/tmp/qwenchat/bin/genie-app").ok
    session = open_chat_session(dev, engine="auto", settings=SamplerSettings(max_tokens=8))
    out = io.StringIO()
    code = Repl(session, reader=_scripted(["hi", "again"]), out=out, confirm=lambda q: False).run()
    screen = out.getvalue()
    assert code == 0
    assert screen.count("note: genie-app cannot keep the model loaded (no genie-app on the phone") == 1
    assert "engine: one genie-t2t-run per turn" in screen


def test_the_chat_banner_names_the_session_engine(bundled_phone):
    emu, dev = bundled_phone()
    session = open_chat_session(dev, engine="auto", settings=SamplerSettings(max_tokens=8))
    out = io.StringIO()
    Repl(session, reader=_scripted(["hi"]), out=out, confirm=lambda q: False).run()
    screen = out.getvalue()
    assert "engine: session (genie-app keeps the model loaded for the whole chat" in screen
    assert "note:" not in screen
    assert genie_apps(dev) == []


def test_an_unknown_engine_is_a_usage_error(capsys):
    code = run_app(app, ["run", "--engine", "warm", "hello", "--connect", "127.0.0.1:9"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "unknown --engine 'warm'" in err


def test_new_sampling_settings_make_a_new_dialog_and_the_turn_rebuilds(bundled_phone):
    # An older genie-app (no `sampler applyConfig`): the sampler lives in the dialog's config.
    emu, dev = bundled_phone(profile={"genie_app_build": "old"})
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=8))
    try:
        session.send("hello")
        session.update_settings(temp=0.5)
        after = session.send("and now?")
        assert after.mode is PromptMode.REBUILD  # the new dialog holds nothing: all is sent
        assert after.stop is not StopReason.FAILED and after.figures.host_load_s is not None
        assert count(emu, "dialog create") == 2
        assert len(genie_apps(dev)) == 1
    finally:
        session.end()


def test_a_newer_genie_app_applies_new_sampling_to_the_live_dialog(bundled_phone):
    """`sampler applyConfig` on the dialog's sampler: no new dialog (no model load), the
    conversation's context kept, and the new seed really samples differently."""
    emu, dev = bundled_phone()
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=60))
    try:
        first = session.send("hello")
        session.update_settings(seed=7)
        second = session.send("hello")
        session.update_settings(seed=8)
        third = session.send("hello")
        assert [r.mode for r in (second, third)] == [PromptMode.FOLLOWUP] * 2
        assert all(r.figures.host_load_s is None for r in (second, third))
        assert count(emu, "dialog create") == 1 and count(emu, "sampler applyConfig") == 2
        # The simulated reply's filler is drawn from the sampler's seed.
        tails = [r.text.split(".", 1)[1] for r in (first, second, third)]
        assert len(set(tails)) == 3, tails
    finally:
        session.end()


def test_interactive_session_chat_ctrl_c_and_exit(emulator_factory, adb_key, synthetic_bundle):
    """`qwenchat run` in a pty (auto engine: a session): Ctrl-C mid-reply returns to the
    prompt with genie-app aborted (new build), the next turn needs no load, /exit ends it."""
    import os

    from test_chat_interactive import PROMPT, Terminal, _push_bundle

    from qwenchat.device.direct import DirectDevice

    emu = emulator_factory(authorized_keys=[adb_key], time_scale=0.1, jitter=False)
    dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
    _push_bundle(dev, synthetic_bundle)
    env = dict(os.environ, COLUMNS="200", LINES="40", TERM="xterm", LC_ALL="C.UTF-8")
    term = Terminal(["run", "--connect", emu.address, "--transport", "direct"], env)
    try:
        assert b"engine: session" in term.read_until(PROMPT)
        term.type("Write a long essay about phones, 600 tokens")
        term.read_until(b"SIMULATED reply")
        pids = genie_apps(dev)
        term.ctrl_c()
        out = term.read_until(PROMPT)
        assert b"stop: cut" in out
        assert genie_apps(dev) == pids and count(emu, "dialog abort qwenchat") == 1
        term.type("after the cut")
        out = term.read_until(PROMPT)
        assert b'you said "after the cut"' in out and b"warm dialog" in out, term.text()
        term.type("/exit")
        assert term.proc.wait(30) == 0
        assert genie_apps(dev) == []
    finally:
        term.close()
        dev.close()
