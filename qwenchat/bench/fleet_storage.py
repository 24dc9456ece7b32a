"""The fleet tables: one row per fleet run (``bench --all``), one per phone in it.

A fleet run is a list of per-phone runs, never a merged guess: each phone's sweep is an
ordinary bench run (``bench_runs``, its trials in ``bench_trials``); these rows only say
which runs belong together, which phone each ran on (by name: SERIAL@SERVER or address),
how each phone ended (done, lost, failed, skipped) and the options to resume with.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from qwenchat.errors import UsageError
from qwenchat.store.db import Store
from qwenchat.store.migrations import migration

FLEET_PREFIX = "fleet-"
UNFINISHED = ("pending", "running", "lost", "interrupted")


@migration
def m048_bench_fleets(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE bench_fleets (id TEXT PRIMARY KEY, created_at REAL NOT NULL,"
        " options_json TEXT NOT NULL, work_dir TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE bench_fleet_phones (fleet_id TEXT NOT NULL REFERENCES bench_fleets(id),"
        " phone TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL, note TEXT, facts_json TEXT,"
        " PRIMARY KEY (fleet_id, phone))"
    )


@dataclass
class FleetPhone:
    phone: str
    run_id: str | None
    status: str  # pending | running | done | lost | failed | interrupted | stopped
    note: str | None
    facts: dict[str, Any] | None = None  # what the phone held: qairt_version, ...

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED


@dataclass
class FleetRecord:
    id: str
    created_at: float
    options: dict[str, Any]
    work_dir: str
    phones: list[FleetPhone]

    @property
    def unfinished(self) -> list[FleetPhone]:
        return [p for p in self.phones if p.unfinished]


class FleetStorage:
    def __init__(self, store: Store) -> None:
        self.db: sqlite3.Connection = store.db

    def create(self, options: dict[str, Any], work_dir: str, phones: list[str]) -> str:
        fleet_id = FLEET_PREFIX + time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT INTO bench_fleets (id, created_at, options_json, work_dir) VALUES (?,?,?,?)",
                (fleet_id, time.time(), json.dumps(options), work_dir),
            )
            self.db.executemany(
                "INSERT INTO bench_fleet_phones (fleet_id, phone, status) VALUES (?, ?, 'pending')",
                [(fleet_id, phone) for phone in phones],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return fleet_id

    def set_phone(
        self, fleet_id: str, phone: str, status: str, *, run_id: str | None = None,
        note: str | None = None,
    ) -> None:  # fmt: skip
        """One autocommitted UPDATE: a phone's state is on disk when this returns."""
        self.db.execute(
            "UPDATE bench_fleet_phones SET status = ?, run_id = COALESCE(?, run_id), note = ?"
            " WHERE fleet_id = ? AND phone = ?",
            (status, run_id, note, fleet_id, phone),
        )

    def set_facts(self, fleet_id: str, phone: str, facts: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE bench_fleet_phones SET facts_json = ? WHERE fleet_id = ? AND phone = ?",
            (json.dumps(facts), fleet_id, phone),
        )

    def fleet_ids(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT id FROM bench_fleets ORDER BY created_at DESC, id DESC")]  # fmt: skip

    def resolve(self, ref: str | None) -> str:
        """A fleet id, a unique prefix of one, or None / ``last``: the newest."""
        ids = self.fleet_ids()
        if not ids:
            raise UsageError("no fleet bench runs in the store", hint="Run one: qwenchat bench --all")
        if ref is None or ref.strip() in ("last", ""):
            return ids[0]
        ref = ref.strip()
        matching = [i for i in ids if i == ref or i.startswith(ref)]
        if len(matching) != 1:
            what = "no" if not matching else "several"
            raise UsageError(f"{what} fleet bench runs match {ref!r}",
                             hint="`qwenchat results list` shows the runs.")  # fmt: skip
        return matching[0]

    def load(self, ref: str | None) -> FleetRecord:
        fleet_id = self.resolve(ref)
        row = self.db.execute(
            "SELECT id, created_at, options_json, work_dir FROM bench_fleets WHERE id = ?",
            (fleet_id,),
        ).fetchone()
        phones = [
            FleetPhone(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None)
            for r in self.db.execute(
                "SELECT phone, run_id, status, note, facts_json FROM bench_fleet_phones"
                " WHERE fleet_id = ?"
                " ORDER BY rowid", (fleet_id,))
        ]  # fmt: skip
        return FleetRecord(row[0], row[1], json.loads(row[2]), row[3], phones)


def is_fleet_ref(ref: str | None) -> bool:
    return ref is not None and ref.strip().startswith(FLEET_PREFIX)
