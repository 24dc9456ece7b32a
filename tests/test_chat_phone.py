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


@pytest.fixture
def phone(bundled_phone):
    """Factory: an emulated phone with the bundle pushed, and an open Device to it."""

    def make(**overrides):
        overrides.setdefault("time_scale", TIME_SCALE)
        return bundled_phone(**overrides)

    return make


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
    assert result.stop is StopReason.FAILED
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


# ----- faults: nothing lost, state never trusted after a failed turn, state removed at the end


def _ls(device, path) -> list[str]:
    from qwenchat.shellwords import quote

    return device.shell(f"ls {quote(path)} 2>/dev/null").text.split()


def test_an_exception_mid_reply_stores_the_text_and_the_next_turn_rebuilds(phone, tmp_path):
    """A turn that ends in an exception (here the caller's callback raising, as Ctrl-C does
    where no handler is installed) must not leave the session trusting a state that lacks
    that turn: the next turn rebuilds from the transcript, which keeps the printed part."""
    from qwenchat.store import open_store

    _, dev = phone()
    with open_store(tmp_path / "chat.db") as store:
        session = _session(dev, store=store, max_tokens=64)
        assert session.send("first question").mode is PromptMode.REBUILD
        shown: list[str] = []

        def interrupt_after_some_text(text: str) -> None:
            shown.append(text)
            if len("".join(shown)) > 20:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            session.send("second question", interrupt_after_some_text)
        assert _genie_pids(dev) == []  # the runner stopped the phone's process
        partial = session.messages[-1]
        assert partial.role == "assistant" and partial.content == "".join(shown)
        stored = session.storage.conversation(session.session_id)["messages"][-1]
        assert stored["content"] == "".join(shown) and stored["stop_reason"] == "cut"
        assert stored["generations"][0]["stop_reason"] == "cut"  # a figures row exists
        third = session.send("third question")
        assert third.mode is PromptMode.REBUILD and third.ok
        # The rebuilt prompt held the interrupted turn: Genie counted exactly the transcript.
        whole = full_prompt(None, session.messages[:-1])
        assert third.figures.genie_prompt_tokens == session.counter.count(whole)


def test_a_timed_out_followup_makes_the_next_turn_rebuild(phone):
    emu, dev = phone()
    session = _session(dev, max_tokens=32)
    assert session.send("one").ok
    session.load_timeout = 3.0  # --load-timeout 3
    emu.config.faults = Faults(hang_before_first_token=True)
    emu.config.save()  # the simulated genie-t2t-run reads its settings at every start
    hung = session.send("two")
    assert hung.stop is StopReason.TIMED_OUT and hung.mode is PromptMode.FOLLOWUP
    assert hung.error and "no reply within 3 s" in hung.error
    assert _genie_pids(dev) == []
    emu.config.faults = Faults()
    emu.config.save()
    assert session.send("three").mode is PromptMode.REBUILD


def test_a_chat_removes_its_state_from_the_phone_when_it_ends(phone):
    _, dev = phone()
    layout = PhoneLayout()
    session = _session(dev, max_tokens=16, temp=0.5)  # non-default settings: a session config
    session.send("hello")
    first = session.session_id
    assert _ls(dev, layout.states_dir) == [first]
    # Its config, and its owner (issue 31: the next run removes a killed chat's state).
    assert _ls(dev, layout.tmp_dir) == [f"session-{first}.json", f"state-{first}.owner"]
    session.clear()  # /clear: the old conversation's state goes
    assert _ls(dev, layout.states_dir) == [] and _ls(dev, layout.tmp_dir) == []
    session.send("again")
    assert _ls(dev, layout.states_dir) == [session.session_id]
    session.end()
    assert _ls(dev, layout.states_dir) == [] and _ls(dev, layout.tmp_dir) == []


def test_figures_count_from_enter(phone):
    """Host time before the query (rendering, counting, a tokenizer still loading) is time
    the user waits: the host figures start when the message was handed over."""
    import time

    _, dev = phone()
    session = _session(dev, max_tokens=16)
    entered = time.monotonic() - 5.0  # as if Enter was pressed 5 s ago
    result = session.send("hello", entered_at=entered)
    f = result.figures
    assert f.host_prepare_s >= 5.0
    assert f.host_first_token_s >= f.host_prepare_s + f.genie_ttft_us / 1e6
    assert f.host_total_s >= f.host_first_token_s


def test_the_tokenizer_loads_before_the_first_message(phone):
    """Opening a chat starts loading the tokenizer (and template) in the background, so the
    first turn does not wait for it."""
    import threading

    _, dev = phone()
    session = _session(dev)
    loaders = [t for t in threading.enumerate() if t.name == "warm-up"]
    for thread in loaders:
        thread.join(60)
    assert session.counter._tokenizer is not None  # loaded without any message sent


def test_another_model_than_the_phones_is_refused_before_genie_runs(phone):
    import dataclasses

    from qwenchat.errors import BundleError
    from qwenchat.models.registry import get_model

    _, dev = phone()
    other = dataclasses.replace(get_model(), name="llama-v2-7b-chat", display_name="Llama-v2-7B-Chat")
    with pytest.raises(BundleError) as caught:
        open_chat_session(dev, model=other)
    assert caught.value.message == "the phone holds Qwen2-7B-Instruct, not Llama-v2-7B-Chat"
    assert _ls(dev, PhoneLayout().tmp_dir) == []  # no prompt was ever pushed
    session = open_chat_session(dev)  # no --model: the phone's
    assert session.model.name == "qwen2-7b-instruct"


def _restart(emu, **changes):
    """The same emulated phone back on the same address (optionally changed)."""
    import dataclasses

    from qwenchat.emulator.server import EmulatorServer

    config = dataclasses.replace(emu.config, **changes)
    server = EmulatorServer(config, port=emu.port)
    server.start()
    return server


def test_a_chat_survives_its_phone_vanishing_and_reconnects(phone, tmp_path):
    from qwenchat.chat.link import PhoneLink
    from qwenchat.device.direct import DirectDevice
    from qwenchat.errors import DeviceError, DeviceLostError
    from qwenchat.store import open_store

    emu, dev = phone()
    opened = []

    def reopen():
        device = DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)
        opened.append(device)
        return device

    link = PhoneLink(reopen)
    with open_store(tmp_path / "chat.db") as store:
        session = _session(dev, store=store, max_tokens=32)
        assert session.send("before").ok
        emu.stop()
        with pytest.raises(DeviceLostError):
            session.send("while gone")  # nothing sent, nothing stored
        assert session.lost and [m.content for m in session.messages][0] == "before"
        assert len(session.messages) == 2
        with pytest.raises(DeviceError):
            link.reconnect(session)  # still gone
        other = _restart(emu, serial="another-phone-0002")
        try:
            with pytest.raises(DeviceError, match="another phone answered"):
                link.reconnect(session)
        finally:
            other.stop()
        back = _restart(emu)
        try:
            link.reconnect(session)
            assert not session.lost
            after = session.send("after")
            assert after.ok and after.mode is PromptMode.REBUILD  # rebuilt from the transcript
            assert 'you said "after"' in after.text
            assert [m.content for m in session.messages if m.role == "user"] == ["before", "after"]
            session.end()
            link.close()
        finally:
            back.stop()


def test_a_reply_that_fills_the_context_says_so(bundled_phone):
    """Genie ends the reply with [END], exit 0, when the context is full: the stop reason is
    "context full" (not max tokens or EOS), and ctx used is the context size."""
    from qwenchat.chat.plan import ChatMessage

    _, dev = bundled_phone(profile={"decode_tok_s": 5000})
    session = open_chat_session(dev)
    text = "Write 4090 tokens about phones."
    prompt_tokens = session.counter.count(full_prompt(None, [ChatMessage("user", text)]))
    room = session.ctx_size - prompt_tokens  # the budget lets the reply fill the rest
    session.update_settings(max_tokens=room)
    result = session.send(text)
    assert result.stop is StopReason.CONTEXT_FULL, (result.stop, result.error)
    assert result.figures.genie_generated_tokens == room
    assert result.figures.ctx_used == session.ctx_size == 4096


def test_continue_sends_the_history_with_the_reply_left_open(phone):
    """/continue renders the transcript with the cut reply as the open last turn: no
    <|im_end|> after it, no new assistant header (hand-written ChatML as the oracle)."""
    _, dev = phone()
    session = _session(dev, max_tokens=8)
    first = session.send("Write a long story about phones.")
    assert first.stop is StopReason.MAX_TOKENS
    partial = session.messages[-1].content
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWrite a long story about phones.<|im_end|>\n"
        f"<|im_start|>assistant\n{partial}"
    )
    cont = session.continue_reply()
    assert cont.mode is PromptMode.CONTINUATION
    assert cont.figures.genie_prompt_tokens == session.counter.count(expected)
    # The reply grows: the cut part, then what Genie generated after it.
    assert cont.text == session.messages[-1].content and cont.text.startswith(partial)
    assert len(cont.text) > len(partial)
