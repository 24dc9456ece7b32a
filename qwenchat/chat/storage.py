"""Chat history in the local SQLite store: conversations, messages, per-reply figures.

Every message is written the moment it exists (the user's before it is sent, the reply as
soon as its first token arrives and then as it grows), so a crash or Ctrl-C loses nothing
but the last fraction of a second of a reply. Figures keep their source in the column name:
``genie_*`` from Genie's profiler, ``host_*`` from the host clock.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwenchat.chat.outcome import GENIE_SOURCES
from qwenchat.errors import StoreError
from qwenchat.store.migrations import migration

if TYPE_CHECKING:
    from qwenchat.chat.outcome import ReplyResult
    from qwenchat.chat.plan import ChatMessage
    from qwenchat.chat.session import ChatSession
    from qwenchat.runner.request import SamplerSettings
    from qwenchat.store import Store

# The only model qwenchat ran before conversations recorded theirs (store migration m013).
MODEL_BEFORE_MODELS = "qwen2-7b-instruct"


@migration
def m010_chat_conversations(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE chat_conversations (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            title TEXT,
            system_prompt TEXT,
            settings_json TEXT NOT NULL DEFAULT '{}',
            device_serial TEXT,
            device_model TEXT,
            device_soc TEXT,
            simulated INTEGER NOT NULL DEFAULT 0
        )"""
    )


@migration
def m011_chat_messages(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE chat_messages (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES chat_conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            stop_reason TEXT,
            dropped INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        )"""
    )
    db.execute("CREATE INDEX chat_messages_conv ON chat_messages(conversation_id, id)")


@migration
def m012_chat_replies(db: sqlite3.Connection) -> None:
    # One row per generation (a continued reply has two): the figures of that process.
    db.execute(
        """CREATE TABLE chat_replies (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES chat_conversations(id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
            prompt_mode TEXT NOT NULL,
            stop_reason TEXT NOT NULL,
            error TEXT,
            settings_json TEXT NOT NULL DEFAULT '{}',
            genie_init_time_us REAL,
            genie_num_prompt_tokens INTEGER,
            genie_prompt_rate_tok_s REAL,
            genie_ttft_us REAL,
            genie_num_generated_tokens INTEGER,
            genie_decode_rate_tok_s REAL,
            genie_decode_time_us REAL,
            host_first_token_s REAL,
            host_total_s REAL,
            host_counted_prompt_tokens INTEGER,
            ctx_used INTEGER,
            ctx_size INTEGER,
            simulated INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        )"""
    )
    db.execute("CREATE INDEX chat_replies_conv ON chat_replies(conversation_id, id)")


@migration
def m013_chat_conversation_model(db: sqlite3.Connection) -> None:
    # Which LLM a conversation was held with. Before models were named there was one.
    db.execute(
        "ALTER TABLE chat_conversations ADD COLUMN model TEXT NOT NULL"
        f" DEFAULT '{MODEL_BEFORE_MODELS}'"
    )


@migration
def m014_chat_reply_prepare_time(db: sqlite3.Connection) -> None:
    # Host time from Enter to the query leaving for the phone (rendering, counting).
    db.execute("ALTER TABLE chat_replies ADD COLUMN host_prepare_s REAL")


@migration
def m015_chat_reply_engine(db: sqlite3.Connection) -> None:
    # How the reply ran (every reply before this ran one genie-t2t-run per turn) and the
    # model load a live session paid for it (host clock; NULL: none, or per-turn engine).
    db.execute("ALTER TABLE chat_replies ADD COLUMN engine TEXT NOT NULL DEFAULT 'process'")
    db.execute("ALTER TABLE chat_replies ADD COLUMN host_load_s REAL")


@migration
def m019_chat_conversation_origin(db: sqlite3.Connection) -> None:
    # Who held the conversation: a person at `qwenchat run` ('chat', every one before this)
    # or a client of `qwenchat serve` ('served').
    db.execute("ALTER TABLE chat_conversations ADD COLUMN origin TEXT NOT NULL DEFAULT 'chat'")


@migration
def m027_chat_one_outcome_vocabulary(db: sqlite3.Connection) -> None:
    # Stop reasons in the runner's words (runner/outcome.py): "timeout" is "timed_out",
    # "error" is "failed". The words are written here, as shipped: never edit them.
    for old, new in (("timeout", "timed_out"), ("error", "failed")):
        for table in ("chat_messages", "chat_replies"):
            db.execute(f"UPDATE {table} SET stop_reason = ? WHERE stop_reason = ?", (new, old))


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    created_at: str
    updated_at: str
    title: str | None
    messages: int
    device_model: str | None
    simulated: bool
    model: str
    origin: str = "chat"


def store_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """A damaged store file (a corrupted page) becomes one line naming the file and what to
    do, not a traceback: SQLite finds the damage only when a query reads that page."""

    @functools.wraps(method)
    def guarded(self: ChatStorage, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise damaged_store(self.path, exc) from exc

    return guarded


def damaged_store(path: Any, exc: Exception) -> StoreError:
    return StoreError(
        f"the qwenchat store {path} cannot be read: {exc}",
        hint=f"Move it aside (qwenchat then starts a new one); `sqlite3 {path} .recover` "
        "salvages what is still readable into SQL.",
    )


class ChatStorage:
    """The chat tables of one open store."""

    def __init__(self, store: Store) -> None:
        self.db = store.db
        self.path = store.path

    # ----- writes
    @store_errors
    def save_conversation(self, session: ChatSession) -> None:
        title = next((m.content for m in session.messages if m.role == "user"), None)
        if title is not None:
            title = " ".join(title.split())[:80]
        self.db.execute(
            """INSERT INTO chat_conversations
                 (id, title, system_prompt, settings_json, device_serial, device_model,
                  device_soc, simulated, model, origin)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET
                 title = COALESCE(chat_conversations.title, excluded.title),
                 system_prompt = excluded.system_prompt,
                 settings_json = excluded.settings_json,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')""",
            (
                session.session_id,
                title,
                session.system,
                json.dumps(session.settings.as_dict()),
                session.info.serial,
                session.info.model,
                session.info.soc,
                int(session.info.simulated),
                session.model_name,
                session.origin,
            ),
        )

    @store_errors
    def add_message(self, conversation_id: str, message: ChatMessage) -> int:
        self.db.execute("BEGIN")
        try:
            cur = self.db.execute(
                "INSERT INTO chat_messages (conversation_id, role, content, stop_reason)"
                " VALUES (?, ?, ?, ?)",
                (conversation_id, message.role, message.content, message.stop_reason),
            )
            self.db.execute(
                "UPDATE chat_conversations SET updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),"
                " title = COALESCE(title, ?) WHERE id = ?",
                (
                    " ".join(message.content.split())[:80] if message.role == "user" else None,
                    conversation_id,
                ),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        assert cur.lastrowid is not None  # an INSERT always sets it
        return cur.lastrowid

    @store_errors
    def update_message(self, message: ChatMessage) -> None:
        self.db.execute(
            "UPDATE chat_messages SET content = ?, stop_reason = ? WHERE id = ?",
            (message.content, message.stop_reason, message.db_id),
        )

    @store_errors
    def mark_dropped(self, ids: list[int]) -> None:
        """Dropped turns (context budget, /regen) stay in the history, flagged."""
        if ids:
            marks = ",".join("?" * len(ids))
            self.db.execute(f"UPDATE chat_messages SET dropped = 1 WHERE id IN ({marks})", ids)

    @store_errors
    def record_reply(
        self,
        conversation_id: str,
        message_id: int,
        result: ReplyResult,
        settings: SamplerSettings,
    ) -> None:
        f = result.figures
        self.db.execute("BEGIN")
        try:
            self.db.execute(
                "UPDATE chat_messages SET content = ?, stop_reason = ? WHERE id = ?",
                (result.text, result.stop.value, message_id),
            )
            self.db.execute(
                """INSERT INTO chat_replies (conversation_id, message_id, prompt_mode,
                     stop_reason, error, settings_json, genie_init_time_us,
                     genie_num_prompt_tokens, genie_prompt_rate_tok_s, genie_ttft_us,
                     genie_num_generated_tokens, genie_decode_rate_tok_s, genie_decode_time_us,
                     host_first_token_s, host_total_s, host_counted_prompt_tokens, ctx_used,
                     ctx_size, simulated, host_prepare_s, engine, host_load_s)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    conversation_id,
                    message_id,
                    result.mode.value,
                    result.stop.value,
                    result.error,
                    json.dumps(settings.as_dict()),
                    f.genie_init_us,
                    f.genie_prompt_tokens,
                    f.genie_prefill_rate,
                    f.genie_ttft_us,
                    f.genie_generated_tokens,
                    f.genie_decode_rate,
                    f.genie_decode_time_us,
                    f.host_first_token_s,
                    f.host_total_s,
                    f.counted_prompt_tokens,
                    f.ctx_used,
                    f.ctx_size,
                    int(f.simulated),
                    f.host_prepare_s,
                    f.engine,
                    f.host_load_s,
                ),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # ----- reads
    @store_errors
    def list_conversations(self, limit: int = 20) -> list[ConversationSummary]:
        rows = self.db.execute(
            """SELECT c.id, c.created_at, c.updated_at, c.title, c.device_model, c.simulated,
                      c.model, c.origin, (SELECT COUNT(*) FROM chat_messages m
                        WHERE m.conversation_id = c.id AND m.dropped = 0) AS messages
                 FROM chat_conversations c ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?""",
            (limit,),
        ).fetchall()
        return [
            ConversationSummary(
                id=r["id"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                title=r["title"],
                messages=r["messages"],
                device_model=r["device_model"],
                simulated=bool(r["simulated"]),
                model=r["model"],
                origin=r["origin"],
            )
            for r in rows
        ]

    @store_errors
    def resolve_id(self, prefix: str) -> str | None:
        """A full id from a unique prefix (ids are long); 'last' is the newest."""
        if prefix == "last":
            row = self.db.execute(
                "SELECT id FROM chat_conversations ORDER BY updated_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            return row["id"] if row else None
        rows = self.db.execute(
            "SELECT id FROM chat_conversations WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 2",
            (prefix, prefix.replace("%", "\\%").replace("_", "\\_") + "%"),
        ).fetchall()
        exact = [r["id"] for r in rows if r["id"] == prefix]
        if exact:
            return exact[0]
        return rows[0]["id"] if len(rows) == 1 else None

    @store_errors
    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """A whole conversation as plain JSON-ready data (the `--json` export)."""
        row = self.db.execute(
            "SELECT * FROM chat_conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            return None
        replies: dict[int, list[dict[str, Any]]] = {}
        for r in self.db.execute(
            "SELECT * FROM chat_replies WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ):
            replies.setdefault(r["message_id"], []).append(_reply_json(r))
        messages = []
        for m in self.db.execute(
            "SELECT * FROM chat_messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ):
            item: dict[str, Any] = {
                "id": m["id"],
                "role": m["role"],
                "content": m["content"],
                "created_at": m["created_at"],
                "dropped": bool(m["dropped"]),
            }
            if m["role"] == "assistant":
                item["stop_reason"] = m["stop_reason"]
                item["generations"] = replies.get(m["id"], [])
            messages.append(item)
        return {
            "id": row["id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "title": row["title"],
            "model": row["model"],
            "origin": row["origin"],
            "system": row["system_prompt"],
            "settings": _settings(row["settings_json"]),
            "device": {
                "serial": row["device_serial"],
                "model": row["device_model"],
                "soc": row["device_soc"],
                "simulated": bool(row["simulated"]),
            },
            "messages": messages,
        }


def _settings(text: str | None) -> dict[str, Any]:
    """A stored settings object; a damaged one (not JSON) says so instead of failing the
    whole conversation."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"damaged": "the stored settings are not JSON"}
    return value if isinstance(value, dict) else {"damaged": "the stored settings are not an object"}


def _reply_json(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "prompt_mode": r["prompt_mode"],
        "stop_reason": r["stop_reason"],
        "error": r["error"],
        "settings": _settings(r["settings_json"]),
        "engine": r["engine"],
        "genie": {
            "source": GENIE_SOURCES.get(r["engine"], "genie --profile"),
            "init_time_us": r["genie_init_time_us"],
            "num_prompt_tokens": r["genie_num_prompt_tokens"],
            "prompt_processing_rate_tok_s": r["genie_prompt_rate_tok_s"],
            "time_to_first_token_us": r["genie_ttft_us"],
            "num_generated_tokens": r["genie_num_generated_tokens"],
            "token_generation_rate_tok_s": r["genie_decode_rate_tok_s"],
            "token_generation_time_us": r["genie_decode_time_us"],
        },
        "host": {
            # Rows written before m014 (no prepare_s) counted from the query's start.
            "source": "host clock, from Enter"
            if r["host_prepare_s"] is not None
            else "host clock, from the query's start",
            "first_token_s": r["host_first_token_s"],
            "total_s": r["host_total_s"],
            "prepare_s": r["host_prepare_s"],
            "load_s": r["host_load_s"],
        },
        "context": {
            "prompt_tokens_counted": r["host_counted_prompt_tokens"],
            "used": r["ctx_used"],
            "size": r["ctx_size"],
        },
        "simulated": bool(r["simulated"]),
        "created_at": r["created_at"],
    }


__all__ = ["ChatStorage", "ConversationSummary"]
