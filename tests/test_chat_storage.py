"""Chat history in a real SQLite store file: migrations, writes as they happen, export."""

from __future__ import annotations

import json

from qwenchat.chat.session import (
    ChatMessage,
    ChatSession,
    PromptMode,
    ReplyFigures,
    ReplyResult,
    SamplerSettings,
    SessionInfo,
    StopReason,
)
from qwenchat.chat.storage import ChatStorage
from qwenchat.store import open_store


class _NoPhone:
    """ChatSession needs an engine only to run turns; storage tests run none."""


def _session(storage: ChatStorage) -> ChatSession:
    return ChatSession(
        engine=_NoPhone(),  # type: ignore[arg-type]
        counter=None,  # type: ignore[arg-type]
        storage=storage,
        system="Be brief.",
        settings=SamplerSettings(temp=0.5),
        info=SessionInfo(serial="emu-1", model="Pixel", soc="SM8750", simulated=True),
    )


def test_migrations_create_chat_tables(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        names = {r[0] for r in store.db.execute("SELECT name FROM _migrations")}
        assert {"m010_chat_conversations", "m011_chat_messages", "m012_chat_replies"} <= names
    # Opening again applies nothing twice.
    with open_store(tmp_path / "s.db") as store:
        assert store.db.execute("SELECT COUNT(*) FROM chat_messages").fetchone()[0] == 0


def test_messages_are_written_when_they_exist_and_survive_reopen(tmp_path):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        storage = ChatStorage(store)
        session = _session(storage)
        user = ChatMessage("user", "héllo 你好 👋 '$(rm -rf /)'")
        session.messages.append(user)
        session._store_message(user)
        reply = ChatMessage("assistant", "partial")
        session.messages.append(reply)
        session._store_message(reply)
        # A crash here: the reply exists with what had arrived, no figures yet.
    with open_store(path) as store:
        data = ChatStorage(store).conversation(session.session_id)
    assert data["system"] == "Be brief."
    assert data["settings"] == {"temp": 0.5}
    assert data["device"] == {"serial": "emu-1", "model": "Pixel", "soc": "SM8750", "simulated": True}
    assert [m["content"] for m in data["messages"]] == [user.content, "partial"]
    assert data["title"].startswith("héllo")


def test_reply_figures_keep_their_source_and_dropped_turns_stay_flagged(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        storage = ChatStorage(store)
        session = _session(storage)
        user = ChatMessage("user", "q")
        reply = ChatMessage("assistant", "")
        for m in (user, reply):
            session.messages.append(m)
            session._store_message(m)
        figures = ReplyFigures(
            genie_init_us=3_100_000,
            genie_prompt_tokens=20,
            genie_prefill_rate=750.0,
            genie_ttft_us=171_000,
            genie_generated_tokens=57,
            genie_decode_rate=13.6,
            genie_decode_time_us=4_100_000,
            host_first_token_s=3.4,
            host_total_s=7.9,
            host_prepare_s=0.02,
            counted_prompt_tokens=20,
            ctx_used=77,
            simulated=True,
        )
        result = ReplyResult("the answer", StopReason.EOS, PromptMode.REBUILD, figures)
        storage.record_reply(session.session_id, reply.db_id, result, session.settings)
        storage.mark_dropped([user.db_id])
        listed = storage.list_conversations()
        data = storage.conversation(storage.resolve_id(session.session_id[:12]))
    assert listed[0].id == session.session_id and listed[0].messages == 1
    msgs = data["messages"]
    assert msgs[0]["dropped"] is True
    assert msgs[1]["content"] == "the answer" and msgs[1]["stop_reason"] == "eos"
    gen = msgs[1]["generations"][0]
    assert gen["genie"]["source"] == "genie --profile" and gen["genie"]["num_prompt_tokens"] == 20
    assert gen["host"]["source"] == "host clock, from Enter"
    assert gen["host"]["first_token_s"] == 3.4 and gen["host"]["prepare_s"] == 0.02
    assert gen["simulated"] is True and gen["prompt_mode"] == "rebuild"
    json.dumps(data)  # the export is plain JSON


def test_history_cli_lists_shows_and_exports(tmp_path, capsys):
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    with open_store() as store:  # the default store (QWENCHAT_HOME of this test)
        storage = ChatStorage(store)
        session = _session(storage)
        m = ChatMessage("user", "what is a KV cache?")
        session.messages.append(m)
        session._store_message(m)
    assert run_app(app, ["history"]) == 0
    out = capsys.readouterr().out
    assert session.session_id in out and "what is a KV" in out
    assert run_app(app, ["history", "last", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == session.session_id and data["device"]["simulated"] is True
    assert run_app(app, ["history", "nope"]) == 2
    assert "no conversation" in capsys.readouterr().err


def test_conversations_from_before_models_were_recorded_are_qwen2(tmp_path):
    """A store written before m013 (no model column) upgrades in place: its conversations
    were held with the only model there was, Qwen2-7B-Instruct; new ones record theirs."""
    import dataclasses
    import sqlite3

    from qwenchat.chat import storage as chat_storage
    from qwenchat.models.registry import get_model
    from qwenchat.store import migrations

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for fn in (migrations.m001_meta, chat_storage.m010_chat_conversations,
               chat_storage.m011_chat_messages, chat_storage.m012_chat_replies):
        fn(db)
        db.execute("INSERT INTO _migrations (name) VALUES (?)", (fn.__name__,))
    db.execute("INSERT INTO chat_conversations (id, title) VALUES ('old-chat', 'hello')")
    db.close()
    with open_store(path) as store:
        storage = ChatStorage(store)
        assert storage.conversation("old-chat")["model"] == "qwen2-7b-instruct"
        session = _session(storage)
        session.model = dataclasses.replace(get_model(), name="baichuan2-7b")
        message = ChatMessage("user", "new")
        session.messages.append(message)
        session._store_message(message)
        listed = {c.id: c.model for c in storage.list_conversations()}
    assert listed == {"old-chat": "qwen2-7b-instruct", session.session_id: "baichuan2-7b"}


def test_many_qwenchats_opening_one_new_store_at_once_all_get_it(tmp_path):
    """Two qwenchat processes creating the store together (a chat and a one-shot run) both
    saw no migration applied; the second re-ran them ("table ... already exists")."""
    import sqlite3
    import threading

    from qwenchat.store.migrations import MIGRATIONS, apply_migrations

    for round_ in range(5):
        path = tmp_path / f"race-{round_}.db"
        start = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_one(path=path, start=start, errors=errors) -> None:
            db = sqlite3.connect(path, timeout=10, isolation_level=None)
            try:
                start.wait()
                apply_migrations(db)
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(exc)
            finally:
                db.close()

        threads = [threading.Thread(target=open_one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        with sqlite3.connect(path) as db:
            applied = [row[0] for row in db.execute("SELECT name FROM _migrations")]
        assert sorted(applied) == sorted(name for name, _ in MIGRATIONS)
