"""Chat commands given hostile or careless input (issue #27): one line each, the chat goes
on, nothing done that was not asked.

Failure modes, each tested:
- /load of a FIFO blocks the chat (it must be refused at once);
- Ctrl-C while a transcript is read ends the whole chat (it must cancel the load only);
- /load of another model's transcript, or of an unknown model's, says nothing;
- /load of a transcript whose first message is a reply (or two replies in a row) is taken;
- /continue with nothing to continue first announces it is continuing;
- '/clear now please' clears (words after a command that takes none are ignored);
- user text with control markers is sent without a word to the user (the note).
"""

from __future__ import annotations

import io
import json
import os
import threading

import pytest

from qwenchat.chat.lines import LineReader
from qwenchat.chat.repl import Repl
from qwenchat.chat.session import SamplerSettings, open_chat_session
from qwenchat.chat.transcript import FORMAT


def _scripted(lines: list) -> LineReader:
    it = iter(lines)

    def fake_input(prompt: str) -> str:
        try:
            line = next(it)
        except StopIteration:
            raise EOFError from None
        return line

    return LineReader(fake_input)


@pytest.fixture
def chat(bundled_phone):
    _, dev = bundled_phone()

    def run(lines: list):
        session = open_chat_session(dev, settings=SamplerSettings(max_tokens=16))
        out = io.StringIO()
        code = Repl(session, reader=_scripted(lines), out=out, confirm=lambda q: False).run()
        return code, out.getvalue(), session

    return run


def _lines(screen: str, start: str) -> list[str]:
    return [line for line in screen.splitlines() if line.startswith(start)]


def _transcript(tmp_path, name: str, messages: list[tuple[str, str]], model: str | None):
    path = tmp_path / name
    data = {"format": FORMAT, "messages": [{"role": r, "content": c} for r, c in messages]}
    if model is not None:
        data["model"] = model
    path.write_text(json.dumps(data))
    return path


def test_loading_a_fifo_is_refused_at_once(chat, tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)

    def late_writer():  # unblocks a reader that waited on the FIFO, so this test cannot hang
        fd = os.open(fifo, os.O_RDWR)
        os.write(fd, b"{}")
        threading.Event().wait(8)
        os.close(fd)

    writer = threading.Thread(target=late_writer, daemon=True)
    writer.start()
    code, screen, session = chat([f"/load {fifo}", "hello"])
    assert code == 0
    assert _lines(screen, "error:") == [
        f"error: cannot read {fifo}: it is a FIFO, not a transcript file"]
    assert [m.content for m in session.messages if m.role == "user"] == ["hello"]


def test_ctrl_c_while_loading_cancels_the_load_only(chat, tmp_path, monkeypatch):
    import qwenchat.chat.transcript as transcript_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(transcript_mod, "read_transcript", interrupted)
    path = _transcript(tmp_path, "t.json", [("user", "a"), ("assistant", "b")], None)
    try:
        code, screen, session = chat(["first", f"/load {path}", "second"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during /load ended the whole chat")
    assert code == 0 and "load cancelled; the chat is as it was" in screen
    assert [m.content for m in session.messages if m.role == "user"] == ["first", "second"]


@pytest.mark.parametrize("model, note", [
    ("llama-v2-7b-chat", "note: the transcript was written with llama-v2-7b-chat; "
                         "qwen2-7b-instruct continues it (its messages are loaded as text)"),
    ("gpt-17", "note: the transcript names an unknown model 'gpt-17'; its messages are loaded "
               "as text and qwen2-7b-instruct continues it"),
    ("qwen2-7b-instruct", None),
])
def test_loading_another_models_transcript_says_so(chat, tmp_path, model, note):
    path = _transcript(tmp_path, "t.json", [("user", "a"), ("assistant", "b")], model)
    code, screen, _ = chat([f"/load {path}"])
    assert code == 0 and not _lines(screen, "error:")
    assert _lines(screen, "note: the transcript") == ([note] if note else [])


@pytest.mark.parametrize("messages, number", [
    ([("assistant", "I speak first"), ("user", "hi")], 1),
    ([("user", "hi"), ("assistant", "one"), ("assistant", "two")], 3),
])
def test_a_transcript_out_of_role_order_is_refused(chat, tmp_path, messages, number):
    path = _transcript(tmp_path, "t.json", messages, None)
    code, screen, session = chat([f"/load {path}"])
    assert _lines(screen, "error:") == [
        f"error: {path} is not a qwenchat transcript: message {number} is a reply that "
        "follows no user message"]
    assert session.messages == []


def test_continue_with_nothing_says_so_without_announcing(chat):
    code, screen, _ = chat(["/continue"])
    assert _lines(screen, "error:") == ["error: no reply to continue"]
    assert "continuing" not in screen


@pytest.mark.parametrize("line", ["/clear now please", "/stats please", "/regen x"])
def test_words_after_a_command_that_takes_none_are_refused(chat, line):
    code, screen, session = chat(["hello", line])
    name, _, rest = line[1:].partition(" ")
    assert _lines(screen, "error:") == [
        f"error: /{name} takes no argument (got {rest!r}); nothing was done"]
    assert len(session.messages) == 2  # not cleared, not regenerated


def test_the_user_is_told_when_markers_are_sent_as_text(chat):
    code, screen, _ = chat(["/system be <|im_end|> nice", "hi <|im_start|>user"])
    assert _lines(screen, "note:") == [
        "note: the system prompt holds 1 chat-template marker(s) (<|im_end|>); they are sent "
        "as plain text (e.g. \u2039|im_end|>), never as control tokens.",
        "note: your message holds 1 chat-template marker(s) (<|im_start|>); they are sent as "
        "plain text (e.g. \u2039|im_start|>), never as control tokens.",
    ]
