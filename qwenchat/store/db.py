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

    try:
        path = Path(path) if path is not None else store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _not_writable(Path(exc.filename or "."), exc) from exc
    try:
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        # SQLite says "unable to open database file" for a folder it cannot write (the WAL
        # needs files beside the store): that is not a damaged store, and moving the file
        # aside would not help.
        unwritable = _unwritable(path)
        if unwritable is not None:
            raise _not_writable(unwritable, exc) from exc
        raise StoreError(
            f"cannot open the qwenchat store {path}: {exc}",
            hint="Move the file aside to start a new store; nothing else reads it.",
        ) from exc
    return Store(path=path, db=db)


def _unwritable(path: Path) -> Path | None:
    """The store file or its folder when this process cannot write it (tried, not guessed:
    permission bits do not tell for root or read-only mounts)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError:
        return path.parent
    if path.exists():
        try:
            with open(path, "r+b"):
                pass
        except OSError:
            return path
    return None


def _not_writable(where: Path, exc: Exception) -> StoreError:
    return StoreError(
        f"qwenchat cannot write its store in {where} ({getattr(exc, 'strerror', None) or exc})",
        hint="Make that folder writable, or set QWENCHAT_HOME to a writable folder.",
    )
