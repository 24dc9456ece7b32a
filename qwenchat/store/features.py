"""Imports the modules whose migrations belong in the store (chat, bench).

Kept in one place so opening the store always knows the whole schema, whichever command
opened it first.
"""

import importlib
import importlib.util

for _name in ("qwenchat.chat.storage", "qwenchat.bench.storage", "qwenchat.bench.fleet_storage"):
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name)
