"""The bench tables in qwenchat's store: one row per run, one per trial, written as each
trial completes so a crash or Ctrl-C loses nothing and ``--resume`` can finish a sweep.

Migrations m030-m049 belong to bench.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from qwenchat.errors import UsageError
from qwenchat.store.migrations import migration


@migration
def m030_bench_runs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE bench_runs (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL,          -- running | interrupted | done | stopped
            plan_json TEXT NOT NULL,       -- lengths, gen-len, repetitions, warm-up, seed ...
            context_json TEXT NOT NULL,    -- device, SoC, versions, hashes, simulated
            baseline_json TEXT             -- thermal reading when the run started
        )"""
    )


@migration
def m031_bench_trials(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE bench_trials (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES bench_runs(id) ON DELETE CASCADE,
            length INTEGER NOT NULL,       -- prompt tokens run (after clamping)
            requested INTEGER NOT NULL,    -- prompt tokens asked for
            rep INTEGER NOT NULL,          -- repetition index; warm-ups are negative
            warmup INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            stop_reason TEXT NOT NULL,
            error TEXT,
            created_at REAL NOT NULL,
            result_json TEXT NOT NULL,     -- TrialResult, with Genie's raw profile
            thermal_before_json TEXT,
            thermal_after_json TEXT,
            power_json TEXT,
            cooldown_json TEXT
        )"""
    )
    db.execute("CREATE INDEX bench_trials_run ON bench_trials(run_id, length, rep)")


@dataclass
class StoredTrial:
    length: int
    requested: int
    rep: int
    warmup: bool
    ok: bool
    stop_reason: str
    error: str | None
    result: dict[str, Any]
    thermal_before: dict[str, Any] | None
    thermal_after: dict[str, Any] | None
    power: dict[str, Any] | None
    cooldown: dict[str, Any] | None


@dataclass
class StoredRun:
    id: str
    created_at: float
    finished_at: float | None
    status: str
    plan: dict[str, Any]
    context: dict[str, Any]
    baseline: dict[str, Any] | None
    trials: list[StoredTrial]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class BenchStorage:
    def __init__(self, store: Any) -> None:
        self.db: sqlite3.Connection = store.db

    def create_run(
        self, plan: dict[str, Any], context: dict[str, Any], baseline: dict[str, Any] | None
    ) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute(
            "INSERT INTO bench_runs (id, created_at, status, plan_json, context_json,"
            " baseline_json) VALUES (?, ?, 'running', ?, ?, ?)",
            (run_id, time.time(), _dump(plan), _dump(context), _dump(baseline)),
        )
        return run_id

    def add_trial(self, run_id: str, trial: StoredTrial) -> None:
        # One autocommitted INSERT: the row is on disk when this returns.
        self.db.execute(
            "INSERT INTO bench_trials (run_id, length, requested, rep, warmup, ok, stop_reason,"
            " error, created_at, result_json, thermal_before_json, thermal_after_json,"
            " power_json, cooldown_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id, trial.length, trial.requested, trial.rep, int(trial.warmup),
                int(trial.ok), trial.stop_reason, trial.error, time.time(),
                _dump(trial.result), _dump(trial.thermal_before), _dump(trial.thermal_after),
                _dump(trial.power), _dump(trial.cooldown),
            ),
        )

    def set_status(self, run_id: str, status: str, *, context: dict | None = None) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            finished = time.time() if status in ("done", "stopped") else None
            self.db.execute(
                "UPDATE bench_runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, finished, run_id),
            )
            if context is not None:
                self.db.execute(
                    "UPDATE bench_runs SET context_json = ? WHERE id = ?", (_dump(context), run_id)
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def run_ids(self, *, unfinished: bool = False) -> list[str]:
        sql = "SELECT id FROM bench_runs"
        if unfinished:
            sql += " WHERE status IN ('running', 'interrupted')"
        sql += " ORDER BY created_at DESC, id DESC"
        return [row[0] for row in self.db.execute(sql)]

    def resolve_run_id(self, ref: str) -> str:
        """A full id, a unique prefix of one, or ``last`` (the newest run)."""
        ids = self.run_ids()
        if not ids:
            raise UsageError("no bench runs in the store", hint="Run one: `qwenchat bench`.")
        ref = ref.strip()
        if ref == "last":
            return ids[0]
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UsageError(
                f"no bench run {ref!r} in the store",
                hint="See the ids with `qwenchat results list`.",
            )
        raise UsageError(
            f"{ref!r} matches {len(matches)} bench runs ({', '.join(matches[:3])}...)",
            hint="Give more of the id.",
        )

    def load_run(self, run_id: str) -> StoredRun | None:
        row = self.db.execute("SELECT * FROM bench_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        trials = [
            StoredTrial(
                length=t["length"], requested=t["requested"], rep=t["rep"],
                warmup=bool(t["warmup"]), ok=bool(t["ok"]), stop_reason=t["stop_reason"],
                error=t["error"], result=_load(t["result_json"]),
                thermal_before=_load(t["thermal_before_json"]),
                thermal_after=_load(t["thermal_after_json"]), power=_load(t["power_json"]),
                cooldown=_load(t["cooldown_json"]),
            )
            for t in self.db.execute(
                "SELECT * FROM bench_trials WHERE run_id = ? ORDER BY id", (run_id,)
            )
        ]
        return StoredRun(
            id=row["id"], created_at=row["created_at"], finished_at=row["finished_at"],
            status=row["status"], plan=_load(row["plan_json"]),
            context=_load(row["context_json"]), baseline=_load(row["baseline_json"]),
            trials=trials,
        )
