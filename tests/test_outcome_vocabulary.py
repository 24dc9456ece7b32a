"""One vocabulary of outcomes from the runner up (issue #26): chat, bench, the store and
every output speak runner/outcome.py's words, and what was stored in the older words
(chat: ``timeout``/``error``; bench: ``timed-out``/``cancelled``/``context-overflow``/
``max-tokens``...) reads back in the new ones.

Failure modes covered:
- a second enum of outcomes appearing in a feature (a hand mapping again);
- an older word not recognised (read as FAILED, or refused) or mapped to the wrong outcome;
- a store of the old vocabulary not migrated (bench's column or its stored TrialResult JSON
  left behind; chat's messages or its per-generation rows left behind);
- the migration touching rows already in the new words;
- a saved transcript in the old words refused by /load, or loaded with the old word.

Oracles: the expected words are written out here by hand; the old bench store is the file
committed by an earlier version (tests/data/bench/store-4738144.db), read with sqlite3.
"""

from __future__ import annotations

import ast
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from qwenchat.runner.outcome import Outcome

REPO = Path(__file__).resolve().parent.parent
OLD_BENCH_STORE = Path(__file__).parent / "data" / "bench" / "store-4738144.db"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("timeout", "timed_out"),
        ("error", "failed"),
        ("timed-out", "timed_out"),
        ("cancelled", "cut"),
        ("context-overflow", "context_exceeded"),
        ("context-full", "context_full"),
        ("max-tokens", "max_tokens"),
        ("device-lost", "device_lost"),
        # Words that did not change read as themselves.
        ("eos", "eos"),
        ("cut", "cut"),
        ("stop_sequence", "stop_sequence"),
        ("max_tokens", "max_tokens"),
    ],
)
def test_every_older_word_reads_as_its_outcome(old, new):
    assert Outcome.parse(old).value == new


def test_unknown_or_missing_words_read_as_failed():
    assert Outcome.parse("exploded") is Outcome.FAILED
    assert Outcome.parse(None) is Outcome.FAILED
    assert Outcome.parse("") is Outcome.FAILED


def test_labels_are_the_words_spelt_out():
    assert Outcome.TIMED_OUT.label == "timed out"
    assert Outcome.CONTEXT_EXCEEDED.label == "context exceeded"
    assert Outcome.EOS.label == "eos"


def test_chat_and_bench_speak_the_runners_enum_and_define_none_of_their_own():
    from qwenchat.bench.records import StopReason as BenchStop
    from qwenchat.chat.outcome import StopReason as ChatStop
    from qwenchat.runner.record import Outcome as RecordOutcome

    assert ChatStop is Outcome and BenchStop is Outcome and RecordOutcome is Outcome
    # No other enum in the product names a way a query ends (read from the sources, so a
    # new one anywhere outside the emulated phone fails here).
    ends = {"cut", "eos", "timed_out", "timeout", "cancelled", "failed", "error"}
    offenders = []
    for path in (REPO / "qwenchat").rglob("*.py"):
        if "emulator" in path.parts or path.name == "outcome.py" and path.parent.name == "runner":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id in ("StrEnum", "Enum") for b in node.bases
            ):
                values = {
                    stmt.value.value
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                }
                if values & ends:
                    offenders.append(f"{path.relative_to(REPO)}:{node.name}")
    assert offenders == []


# ----- the store


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("QWENCHAT_HOME", str(home))
    return home


def test_an_old_bench_store_is_rewritten_in_the_new_words(home):
    old = sqlite3.connect(OLD_BENCH_STORE)
    before = old.execute(
        "SELECT id, stop_reason, json_extract(result_json, '$.stop_reason') FROM bench_trials"
    ).fetchall()
    old.close()
    assert before and {(b[1], b[2]) for b in before} == {("max-tokens", "max-tokens")}
    path = home / "data" / "qwenchat.db"
    shutil.copyfile(OLD_BENCH_STORE, path)

    from qwenchat.bench.storage import BenchStorage
    from qwenchat.store import open_store

    with open_store() as store:
        runs = [BenchStorage(store).get_run(run_id) for (run_id,) in
                store.db.execute("SELECT id FROM bench_runs").fetchall()]
    db = sqlite3.connect(path)
    after = db.execute(
        "SELECT id, stop_reason, result_json FROM bench_trials ORDER BY id"
    ).fetchall()
    applied = {r[0] for r in db.execute("SELECT name FROM _migrations")}
    db.close()
    assert "m045_bench_one_outcome_vocabulary" in applied
    assert [row[0] for row in after] == sorted(b[0] for b in before)
    for _id, column, result_json in after:
        assert column == "max_tokens"
        assert json.loads(result_json)["stop_reason"] == "max_tokens"
    trials = [t for run in runs for t in run.trials]
    assert len(trials) == len(before)
    assert all(t.stop_reason is Outcome.MAX_TOKENS for t in trials)


def _chat_store_with_old_words(path: Path) -> None:
    """A store as the code before m027 left it: chat's rows in chat's own words."""
    from qwenchat.store import open_store

    with open_store(path) as store:
        db = store.db
        db.execute("INSERT INTO chat_conversations (id, title) VALUES ('c1', 'old')")
        rows = [("hello", None, "user"), ("half a reply", "timeout", "assistant"),
                ("", "error", "assistant"), ("whole", "eos", "assistant")]
        for content, stop, role in rows:
            cur = db.execute(
                "INSERT INTO chat_messages (conversation_id, role, content, stop_reason)"
                " VALUES ('c1', ?, ?, ?)", (role, content, stop))
            if role == "assistant":
                db.execute(
                    "INSERT INTO chat_replies (conversation_id, message_id, prompt_mode,"
                    " stop_reason) VALUES ('c1', ?, 'rebuild', ?)", (cur.lastrowid, stop))
        # As if m027 had not run yet: the rows above are what older code wrote.
        db.execute("DELETE FROM _migrations WHERE name = 'm027_chat_one_outcome_vocabulary'")


def test_an_old_chat_store_is_rewritten_in_the_new_words(home):
    path = home / "data" / "qwenchat.db"
    _chat_store_with_old_words(path)

    from qwenchat.chat.storage import ChatStorage
    from qwenchat.store import open_store

    with open_store(path) as store:
        conversation = ChatStorage(store).conversation("c1")
    replies = [m for m in conversation["messages"] if m["role"] == "assistant"]
    assert [m["stop_reason"] for m in replies] == ["timed_out", "failed", "eos"]
    assert [m["generations"][0]["stop_reason"] for m in replies] == [
        "timed_out", "failed", "eos"]
    user = [m for m in conversation["messages"] if m["role"] == "user"]
    assert "stop_reason" not in user[0]
    raw = sqlite3.connect(path)
    assert raw.execute(
        "SELECT stop_reason FROM chat_messages WHERE role = 'user'").fetchone() == (None,)
    raw.close()


def test_a_transcript_in_the_old_words_loads_in_the_new(tmp_path):
    from qwenchat.chat.transcript import FORMAT, read_transcript

    path = tmp_path / "old.json"
    path.write_text(json.dumps({
        "format": FORMAT,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "he", "stop_reason": "timeout"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "", "stop_reason": "error"},
        ],
    }))
    transcript = read_transcript(path, ctx_size=4096)
    assert [m.stop_reason for m in transcript.messages] == [None, "timed_out", None, "failed"]


def test_a_transcript_with_a_word_no_version_wrote_is_still_refused(tmp_path):
    from qwenchat.chat.transcript import FORMAT, read_transcript
    from qwenchat.errors import UsageError

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({
        "format": FORMAT,
        "messages": [{"role": "assistant", "content": "x", "stop_reason": "exploded"}],
    }))
    with pytest.raises(UsageError, match="unknown stop_reason 'exploded'"):
        read_transcript(path, ctx_size=4096)
