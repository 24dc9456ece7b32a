"""Chat end to end through the emulated phone: real ADB sockets, the simulated
genie-t2t-run, the real Qwen2 tokenizer and a real SQLite store."""

from __future__ import annotations

import threading

import pytest

from qwenchat.chat.session import (
    ChatSession,
    PromptMode,
    SamplerSettings,
    StopReason,
    followup_prompt,
    full_prompt,
    open_chat_session,
)
from qwenchat.emulator.config import Faults
from qwenchat.layout import PhoneLayout

TIME_SCALE = 0.02


def _push_bundle(device, bundle) -> None:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets

    plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
    push_assets(device, plan, PhoneLayout(), overlap=False)


@pytest.fixture
def phone(emulator_factory, adb_key, synthetic_bundle):
    """Factory: an emulated phone with the bundle pushed, and an open Device to it."""
    from qwenchat.device.direct import DirectDevice

    opened = []

    def make(**overrides):
        overrides.setdefault("time_scale", TIME_SCALE)
        overrides.setdefault("jitter", False)
        emu = emulator_factory(authorized_keys=[adb_key], **overrides)
        dev = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
        opened.append(dev)
        _push_bundle(dev, synthetic_bundle)
        return emu, dev

    yield make
    for dev in opened:
        dev.close()


def _session(device, store=None, **settings) -> ChatSession:
    return open_chat_session(device, settings=SamplerSettings(**settings), store=store)


def _genie_pids(device) -> list[str]:
    return device.shell("pidof genie-t2t-run").text.split()


def test_user_text_reaches_the_phone_only_as_a_file(phone):
    from qwenchat.emulator.genie_sim.reply import quote

    _, dev = phone()
    session = _session(dev, max_tokens=96)
    nasty = "it's \"$(id)\" `uname`; rm -rf / && echo 你好 🦙"
    result = session.send(nasty)
    assert result.stop in (StopReason.EOS, StopReason.MAX_TOKENS), result.error
    # The simulated reply quotes the last user message it read from the prompt file.
    assert f'you said "{quote(nasty)}"' in result.text
    # Genie counted exactly the tokens of the prompt we rendered: the bytes arrived intact.
    expected = full_prompt(None, [session.messages[0]])
    assert result.figures.genie_prompt_tokens == session.counter.count(expected)
    multi = "line one\nline 'two'\n$HOME"
    result = session.send(multi)
    assert f'you said "{quote(multi)}"' in result.text


def test_streamed_multibyte_text_is_whole(phone):
    _, dev = phone()
    session = _session(dev, max_tokens=96)
    pieces: list[str] = []
    result = session.send("中文和表情 😀🎉 再来", pieces.append)
    assert "".join(pieces) == result.text
    assert "\ufffd" not in result.text
    assert "中文和表情 😀🎉 再来" in result.text


def test_multi_turn_sends_only_the_new_turn(phone, tmp_path):
    from qwenchat.store import open_store

    _, dev = phone()
    with open_store(tmp_path / "chat.db") as store:
        session = _session(dev, store=store, max_tokens=32)
        first = session.send("Tell me about Snapdragon.")
        assert first.mode is PromptMode.REBUILD
        second = session.send("And the NPU?")
        assert second.mode is PromptMode.FOLLOWUP
        # Only this turn was prefilled: its text plus the <|im_end|> Genie pushes itself.
        own = session.counter.count(followup_prompt("And the NPU?")) + 1
        assert second.figures.genie_prompt_tokens == own
        whole = session.counter.count(full_prompt(None, session.messages[:-1]))
        assert second.figures.genie_prompt_tokens < whole / 2
        # The state file lives on the phone under states/<session-id>.
        assert dev.stat(session.engine.state_path(session.session_id)) is not None
        # Losing it makes the next turn rebuild transparently.
        dev.shell(f"rm -rf {session.engine.state_path(session.session_id)}")
        third = session.send("Thanks")
        assert third.mode is PromptMode.REBUILD and third.ok
        # A new system prompt also rebuilds; sampler changes do not.
        session.update_settings(temp=0.3, seed=7)
        assert session.send("More?").mode is PromptMode.FOLLOWUP
        session.set_system("Answer in one word.")
        assert session.send("Why?").mode is PromptMode.REBUILD
        data = session.storage.conversation(session.session_id)
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["user", "assistant"] * 5
    modes = [m["generations"][0]["prompt_mode"] for m in data["messages"] if m["role"] == "assistant"]
    assert modes == ["rebuild", "followup", "rebuild", "followup", "rebuild"]
    assert data["device"]["simulated"] is True


def test_max_tokens_stop_and_continuation(phone):
    _, dev = phone()
    session = _session(dev, max_tokens=8)
    result = session.send("Write a long story about phones.")
    assert result.stop is StopReason.MAX_TOKENS
    assert result.figures.genie_generated_tokens == 8
    before = session.messages[-1].content
    cont = session.continue_reply()
    assert cont.mode is PromptMode.CONTINUATION
    assert session.messages[-1].content.startswith(before)
    assert len(session.messages[-1].content) > len(before)
    assert len(session.messages) == 2


def test_cancel_kills_exactly_our_process_and_keeps_the_cut_reply(phone, tmp_path):
    from qwenchat.store import open_store

    _, dev = phone(time_scale=0.2)
    with open_store(tmp_path / "chat.db") as store:
        session = _session(dev, store=store, max_tokens=400)
        got_text = threading.Event()

        def on_text(_: str) -> None:
            got_text.set()

        def cancel_soon() -> None:
            got_text.wait(30)
            session.cancel()

        threading.Thread(target=cancel_soon, daemon=True).start()
        result = session.send("Count to a thousand slowly.", on_text)
        assert result.stop is StopReason.CUT
        assert result.text  # the partial reply is kept
        assert _genie_pids(dev) == []
        stored = session.storage.conversation(session.session_id)["messages"][-1]
        assert stored["stop_reason"] == "cut" and stored["content"] == result.text
        # No state was saved by the killed process: the next turn rebuilds from the transcript.
        session.update_settings(max_tokens=8)
        again = session.send("ok")
        assert again.mode is PromptMode.REBUILD and again.ok


def test_crash_mid_reply_is_recorded_as_an_error(phone):
    _, dev = phone(faults=Faults(crash_after_tokens=3))
    session = _session(dev, max_tokens=32)
    result = session.send("hello")
    assert result.stop is StopReason.ERROR
    assert result.error and "\n" not in result.error


def test_cli_one_shot_json_and_failures(phone, capsys, monkeypatch):
    import json

    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    emu, _ = phone()
    code = run_app(app, ["run", "--connect", emu.address, "--max-tokens", "40", "--json", "Hi there"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["simulated"] is True and data["stop_reason"] in ("eos", "max_tokens")
    assert data["figures"]["genie"]["source"] == "genie --profile"
    assert data["figures"]["genie"]["num_generated_tokens"] <= 40
    assert 'you said "Hi there"' in data["reply"]
    assert run_app(app, ["history", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history[0]["id"] == data["conversation_id"]


def test_cli_fail_to_load_is_one_line_and_nonzero(phone, capsys):
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    emu, _ = phone(faults=Faults(fail_load=True))
    code = run_app(app, ["run", "--connect", emu.address, "hello"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error:") and "Traceback" not in err
