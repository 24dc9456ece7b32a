"""Bad input in a chat: one clear line each, the chat goes on, nothing of it is lost.

The chat loop runs with scripted lines against a session on the emulated phone (real ADB,
simulated genie-t2t-run, real SQLite store); what it prints is read back as text.
"""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from qwenchat.chat.lines import LineReader
from qwenchat.chat.repl import Repl
from qwenchat.chat.session import SamplerSettings, open_chat_session


def _scripted(lines: list[str]) -> LineReader:
    it = iter(lines)

    def fake_input(prompt: str) -> str:
        try:
            line = next(it)
        except StopIteration:
            raise EOFError from None
        if isinstance(line, BaseException):
            raise line
        return line

    return LineReader(fake_input)


@pytest.fixture
def chat(bundled_phone, tmp_path):
    """Run a chat with scripted lines; returns (exit code, screen text, session)."""
    from qwenchat.store import open_store

    _, dev = bundled_phone()
    store = open_store(tmp_path / "chat.db")

    def run(lines: list, **settings):
        session = open_chat_session(
            dev, store=store, settings=SamplerSettings(max_tokens=24, **settings)
        )
        out = io.StringIO()
        code = Repl(session, reader=_scripted(lines), out=out, confirm=lambda q: False).run()
        return code, out.getvalue(), session

    yield run
    store.close()


def _errors(screen: str) -> list[str]:
    return [line for line in screen.splitlines() if line.startswith("error:")]


def test_loading_a_file_that_is_not_a_transcript_changes_nothing(chat, tmp_path):
    files = {
        "list.json": ("[1, 2]", "a JSON list, not an object"),
        "other.json": ('{"messages": []}', 'no "format": "qwenchat-transcript/1"'),
        "roles.json": (
            json.dumps({"format": "qwenchat-transcript/1", "messages": [{"role": "system",
                                                                          "content": "x"}]}),
            "message 1 has role 'system' (user or assistant expected)",
        ),
        "settings.json": (
            json.dumps({"format": "qwenchat-transcript/1", "settings": {"temp": 99},
                        "messages": []}),
            "settings: temp must be between 0 and 5, not 99",
        ),
        "text.json": ("not json at all", "not JSON"),
        "latin1.json": (b"\xe9t\xe9", "not JSON"),
    }
    lines = ["first question"]
    for name, (content, _) in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        lines.append(f"/load {path}")
    lines += [f"/load {tmp_path / 'missing.json'}", "second question"]
    code, screen, session = chat(lines)
    assert code == 0
    errors = _errors(screen)
    assert len(errors) == len(files) + 1, screen
    for error, (name, (_, why)) in zip(errors, files.items(), strict=False):
        assert f"{tmp_path / name} is not a qwenchat transcript" in error and why in error
    assert errors[-1].startswith(f"error: cannot read {tmp_path / 'missing.json'}")
    # The chat went on as if nothing happened: same conversation, both turns in it.
    users = [m.content for m in session.messages if m.role == "user"]
    assert users == ["first question", "second question"]
    stored = session.storage.conversation(session.session_id)
    assert [m["content"] for m in stored["messages"] if m["role"] == "user"] == users
    assert "second question" in screen and "followup" in screen  # the state stayed valid


def test_saving_to_a_missing_folder_keeps_the_chat(chat, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "chat.json"
    good = tmp_path / "chat.json"
    code, screen, session = chat(
        ["hello", f"/save {target}", f"/save {tmp_path}", f"/save {good}", "/stats", "/exit"]
    )
    assert code == 0
    errors = _errors(screen)
    assert errors == [
        f"error: cannot save to {target}: No such file or directory",
        f"error: cannot save to {tmp_path}: it is a folder",
    ]
    assert not target.exists() and "session " in screen  # /stats still ran
    data = json.loads(good.read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["model"] == "qwen2-7b-instruct"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half file


def test_a_saved_transcript_loads_back(chat, tmp_path):
    path = tmp_path / "chat.json"
    _, _, first = chat(["tell me about NPUs", f"/save {path}"])
    code, screen, second = chat([f"/load {path}", "and GPUs?"])
    assert code == 0 and not _errors(screen)
    assert [m.content for m in second.messages[:2]] == [m.content for m in first.messages]
    assert "rebuild" in screen  # a loaded transcript is rebuilt on the phone


def test_nul_bytes_and_undecodable_text_are_refused_and_the_chat_goes_on(chat):
    bad_line = UnicodeDecodeError("utf-8", b"caf\xe9", 3, 4, "invalid continuation byte")
    code, screen, session = chat(
        ["tab\x00le", bad_line, "caf\udce9 au lait", "/system a\x00b", "a fine question"]
    )
    assert code == 0
    assert _errors(screen) == [
        "error: the message contains a NUL byte (character 4)",
        "error: that line is not valid UTF-8 (byte 0xe9); it was not sent",
        "error: the message is not valid UTF-8 text (byte 0xe9 at character 4)",
        "error: the system prompt contains a NUL byte (character 2)",
    ]
    assert [m.content for m in session.messages if m.role == "user"] == ["a fine question"]
    assert session.system is None


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("/set max_tokens=5000", "max_tokens must be between 1 and 4096 (the model's context), not 5000"),
        ("/set temp=nan", "temp must be between 0 and 5, not nan"),
        ("/set top_p=inf", "top_p must be in (0, 1], not inf"),
        ("/set bogus=1", "unknown setting 'bogus'"),
        ("/set temp", "/set expects key=value, got 'temp'"),
        ("/frobnicate", "unknown command /frobnicate"),
        ("/save", "/save needs a file name"),
        ("/continue", "no reply to continue"),
    ],
)
def test_bad_commands_are_one_line(chat, command, error):
    code, screen, session = chat([command, "/set"])
    assert code == 0
    assert _errors(screen) == [f"error: {error}"]
    assert "max_tokens 24" in screen  # the settings did not change


def test_a_damaged_store_is_one_line_naming_the_file(tmp_path, capsys):
    """A corrupted page is found when a query reads it, not when the file opens."""
    from qwenchat.chat.plan import ChatMessage
    from qwenchat.chat.session import ChatSession, SessionInfo
    from qwenchat.chat.storage import ChatStorage
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app
    from qwenchat.paths import store_path
    from qwenchat.store import open_store

    with open_store() as store:
        storage = ChatStorage(store)
        session = ChatSession(engine=None, counter=None, storage=storage,  # type: ignore[arg-type]
                              info=SessionInfo(serial="s"))
        for i in range(300):
            message = ChatMessage("user", f"question {i} " + "x" * 400)
            session.messages.append(message)
            session._store_message(message)
    path = store_path()
    db = sqlite3.connect(path)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'chat_messages'"
    ).fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    # Scribble over the table's root page (an interior page: every scan reads it).
    start = (root - 1) * page
    data[start : start + page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    assert run_app(app, ["history"]) == 1
    err = capsys.readouterr().err.replace("\n", "")  # rich wraps long lines at 80 columns
    assert err.startswith(f"error: the qwenchat store {path} cannot be read:"), err
    assert "malformed" in err and "hint: Move it aside" in err and "Traceback" not in err


def test_a_read_only_data_dir_gets_the_right_hint(tmp_path):
    """Not "move the store aside" (it is fine): the folder cannot be written."""
    import os
    import shutil
    import subprocess
    import sys

    from qwenchat.store import open_store

    home = tmp_path / "home"
    data = home / "data"
    data.mkdir(parents=True)
    open_store(data / "qwenchat.db").close()  # a good store, then its folder made read-only
    for leftover in data.glob("qwenchat.db-*"):
        leftover.unlink()
    data.chmod(0o555)
    command = [sys.executable, "-m", "qwenchat", "history"]
    if os.geteuid() == 0:  # root writes anywhere: drop that power, as a normal user has none
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux)")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    try:
        proc = subprocess.run(
            command, env=dict(os.environ, QWENCHAT_HOME=str(home)), capture_output=True,
            text=True, timeout=60,
        )
    finally:
        data.chmod(0o755)
    err = proc.stderr.replace("\n", "")
    assert proc.returncode == 1, proc.stderr
    assert err.startswith(f"error: qwenchat cannot write its store in {data}"), proc.stderr
    assert "hint: Make that folder writable, or set QWENCHAT_HOME" in err
    assert "Move the file aside" not in err
