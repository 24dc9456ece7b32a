"""Where qwenchat keeps its files on the host.

``QWENCHAT_HOME`` moves everything (data and cache) under one folder; the test suite uses it
so a developer's history, keys and caches are never touched.
"""

from __future__ import annotations

import os
from pathlib import Path


def _home_override() -> Path | None:
    value = os.environ.get("QWENCHAT_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Chat history, bench results, remembered endpoints."""
    override = _home_override()
    if override is not None:
        path = override / "data"
    else:
        from platformdirs import user_data_path

        path = user_data_path("qwenchat", appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Things that can be rebuilt: the Qwen2 tokenizer, manifests, AI Hub downloads."""
    value = os.environ.get("QWENCHAT_CACHE")
    if value:
        path = Path(value).expanduser()
    else:
        override = _home_override()
        if override is not None:
            path = override / "cache"
        else:
            from platformdirs import user_cache_path

            path = user_cache_path("qwenchat", appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path() -> Path:
    return data_dir() / "qwenchat.db"
