"""The bench tables in qwenchat's store: one row per run, one per trial, written as each
trial completes so a crash or Ctrl-C loses nothing and ``--resume`` can finish a sweep.

This is one of the two places bench data is JSON (the other is the files a report is written
to): rows go in from and come back as the typed records of ``records.py``. Rows written by
any earlier version read back (``from_json`` fills what they lack; m032 gives old runs the
model they ran, the only one there was).

Migrations m030-m049 belong to bench.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from typing import Any

from qwenchat.bench.records import (
    RunContext,
    RunPlan,
    RunRecord,
    RunStatus,
    StopReason,
    TrialRecord,
    TrialResult,
)
from qwenchat.bench.thermal import CooldownResult, PowerState, ThermalReading
from qwenchat.errors import UsageError
from qwenchat.store.db import Store
from qwenchat.store.migrations import migration

# Runs stored before runs named their model ran the only model there was.
FIRST_MODEL = "qwen2-7b-instruct"


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


@migration
def m032_bench_run_model(db: sqlite3.Connection) -> None:
    # ModelSpec.name of the model the run measured; every run before this ran Qwen2.
    db.execute(
        f"ALTER TABLE bench_runs ADD COLUMN model TEXT NOT NULL DEFAULT '{FIRST_MODEL}'"
    )


@migration
def m033_bench_trial_manifest(db: sqlite3.Connection) -> None:
    # SHA-256 of the phone's bundle manifest when the trial ran (NULL: not recorded).
    db.execute("ALTER TABLE bench_trials ADD COLUMN manifest_hash TEXT")


@migration
def m034_bench_run_note(db: sqlite3.Connection) -> None:
    # Why a run ended early (the phone lost, the bundle changed, a signal), in one line.
    db.execute("ALTER TABLE bench_runs ADD COLUMN note TEXT")


@migration
def m035_bench_run_engine(db: sqlite3.Connection) -> None:
    # How the run drove Genie: "process" (a fresh genie-t2t-run per trial, every run before
    # this) or "session" (a warm dialog in one genie-app, reset between trials).
    db.execute("ALTER TABLE bench_runs ADD COLUMN engine TEXT NOT NULL DEFAULT 'process'")


@migration
def m045_bench_one_outcome_vocabulary(db: sqlite3.Connection) -> None:
    # Stop reasons in the runner's words (runner/outcome.py), in the column and in the
    # stored TrialResult alike. The words are written here, as shipped: never edit them.
    for old, new in (
        ("timed-out", "timed_out"),
        ("cancelled", "cut"),
        ("context-overflow", "context_exceeded"),
        ("context-full", "context_full"),
        ("max-tokens", "max_tokens"),
        ("device-lost", "device_lost"),
        ("error", "failed"),
    ):
        db.execute(
            "UPDATE bench_trials SET stop_reason = ?1,"
            " result_json = json_set(result_json, '$.stop_reason', ?1)"
            " WHERE stop_reason = ?2",
            (new, old),
        )


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


# A row whose JSON was damaged (a disk error, a hand edit) reads as a failed trial that says
# so, never as a traceback that hides the rest of the run.
DAMAGED = "this trial's stored result is damaged (not JSON); the other trials are intact"
_DAMAGED_RESULT = {"ok": False, "stop_reason": "failed", "error": DAMAGED}


def _load(text: str | None, damaged: Any = None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return damaged


def _as_json(value: Any) -> Any:
    return None if value is None else value.as_json()


class BenchStorage:
    def __init__(self, store: Store) -> None:
        self.db: sqlite3.Connection = store.db

    def create_run(
        self, plan: RunPlan, context: RunContext, baseline: ThermalReading | None
    ) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute(
            "INSERT INTO bench_runs (id, created_at, status, plan_json, context_json,"
            " baseline_json, model, engine) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, time.time(), RunStatus.RUNNING.value, _dump(plan.to_json()),
             _dump(context.to_json()), _dump(_as_json(baseline)), context.model,
             context.engine),
        )
        return run_id

    def add_trial(self, run_id: str, trial: TrialRecord) -> None:
        # One autocommitted INSERT: the row is on disk when this returns.
        self.db.execute(
            "INSERT INTO bench_trials (run_id, length, requested, rep, warmup, ok, stop_reason,"
            " error, created_at, result_json, thermal_before_json, thermal_after_json,"
            " power_json, cooldown_json, manifest_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id, trial.length, trial.requested, trial.rep, int(trial.warmup),
                int(trial.ok), trial.stop_reason.value, trial.error, time.time(),
                _dump(trial.result.to_json()), _dump(_as_json(trial.thermal_before)),
                _dump(_as_json(trial.thermal_after)), _dump(_as_json(trial.power)),
                _dump(_as_json(trial.cooldown)), trial.manifest_hash,
            ),
        )

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        context: RunContext | None = None,
        note: str | None = None,
    ) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            finished = time.time() if status in (RunStatus.DONE, RunStatus.STOPPED) else None
            self.db.execute(
                "UPDATE bench_runs SET status = ?, finished_at = ?, note = ? WHERE id = ?",
                (RunStatus(status).value, finished, note, run_id),
            )
            if context is not None:
                self.db.execute(
                    "UPDATE bench_runs SET context_json = ? WHERE id = ?",
                    (_dump(context.to_json()), run_id),
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

    def get_run(self, ref: str) -> RunRecord:
        """The run ``ref`` names (an id, a unique prefix or ``last``); UsageError if none."""
        run = self.load_run(self.resolve_run_id(ref))
        assert run is not None  # resolve_run_id only returns stored ids
        return run

    def load_run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute("SELECT * FROM bench_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        trials = [
            _trial(t)
            for t in self.db.execute(
                "SELECT * FROM bench_trials WHERE run_id = ? ORDER BY id", (run_id,)
            )
        ]
        context = RunContext.from_json(_load(row["context_json"]) or {}, model=row["model"])
        context.engine = row["engine"]  # the column (m035) is what the run was started with
        return RunRecord(
            id=row["id"],
            created_at=row["created_at"],
            status=RunStatus.parse(row["status"]),
            plan=RunPlan.from_json(_load(row["plan_json"]) or {}),
            context=context,
            finished_at=row["finished_at"],
            baseline=ThermalReading.from_json(_load(row["baseline_json"])),
            trials=trials,
            note=row["note"],
        )


def _trial(row: sqlite3.Row) -> TrialRecord:
    loaded = _load(row["result_json"], _DAMAGED_RESULT)
    result = TrialResult.from_json(loaded or {})
    if loaded is not _DAMAGED_RESULT:
        # The row's columns are what was reported when it was stored: they win over the JSON
        # (before records were typed, a failed trial's column said "error" whatever its JSON
        # said). A damaged JSON lost the figures: the trial cannot count as measured.
        result.ok = bool(row["ok"])
        result.stop_reason = StopReason.parse(row["stop_reason"])
        result.error = row["error"]
    return TrialRecord(
        length=row["length"],
        requested=row["requested"],
        rep=row["rep"],
        result=result,
        thermal_before=ThermalReading.from_json(_load(row["thermal_before_json"])),
        thermal_after=ThermalReading.from_json(_load(row["thermal_after_json"])),
        power=PowerState.from_json(_load(row["power_json"])),
        cooldown=CooldownResult.from_json(_load(row["cooldown_json"])),
        manifest_hash=row["manifest_hash"],
    )
