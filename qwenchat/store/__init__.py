"""The local SQLite store: one file in the user data dir for everything qwenchat records."""

from qwenchat.store.db import Store, open_store

__all__ = ["Store", "open_store"]
