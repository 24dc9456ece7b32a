"""Opening the store: WAL mode, foreign keys, migrations applied on open."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from qwenchat.errors import StoreError
from qwenchat.paths import store_path
from qwenchat.store.migrations import apply_migrations


@dataclass
class Store:
    """A thin owner of the SQLite connection; features keep their own queries."""

    path: Path
    db: sqlite3.Connection

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: Path | None = None) -> Store:
    import qwenchat.store.features  # noqa: F401  (feature modules register their migrations)

    path = Path(path) if path is not None else store_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"cannot open the qwenchat store {path}: {exc}",
            hint="Move the file aside to start a new store; nothing else reads it.",
        ) from exc
    return Store(path=path, db=db)
