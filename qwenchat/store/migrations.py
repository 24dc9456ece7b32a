"""Numbered schema migrations, in the spirit of simonw/llm's ``migrations.py``.

Every schema change is a small function registered with ``@migration``; its name is recorded
in ``_migrations`` once applied, so an old database upgrades itself and nothing is lost.
Never edit a migration that has shipped: add a new one.

Numbering: m001-m009 core, m010-m029 chat, m030-m049 bench, m050+ others.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_meta(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def apply_migrations(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, fn in sorted(MIGRATIONS, key=lambda item: item[0]):
        if name in done:
            continue
        # One transaction per migration: a failed one leaves nothing half-done. Another
        # qwenchat opening the same new store may have applied it since `done` was read:
        # asked again under the write lock, it is skipped, not run twice.
        db.execute("BEGIN IMMEDIATE")
        if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
            db.execute("COMMIT")
            continue
        try:
            fn(db)
            db.execute("INSERT INTO _migrations (name) VALUES (?)", (name,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(name)
    return applied
