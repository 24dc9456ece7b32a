"""What a bundle holds (size + SHA-256 per file), and a host-side cache of file hashes.

Hashing 5 GB takes ~10 s even at disk speed, so each file's SHA-256 is computed once and
cached by (absolute path, size, mtime_ns): an unchanged bundle is re-pushed without reading
a byte of it. hashlib releases the GIL on large buffers, so two files hash in parallel on
two threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qwenchat import __version__
from qwenchat.errors import BundleError
from qwenchat.paths import cache_dir

MANIFEST_VERSION = 1
HASH_BUFFER = 4 * 1024 * 1024  # big enough that hashlib runs without the GIL most of the time


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclass
class BundleManifest:
    """Relative path (under the phone's work dir) → size and SHA-256."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    tool_version: str = f"qwenchat {__version__}"
    # The ModelSpec name the bundle was assembled for (None: pushed before models were named,
    # which only Qwen2-7B-Instruct could be).
    model: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "created": self.created,
                "tool_version": self.tool_version,
                "model": self.model,
                "files": {
                    name: {"size": e.size, "sha256": e.sha256}
                    for name, e in sorted(self.files.items())
                },
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> BundleManifest:
        """Parse a manifest; raises BundleError when it is not one of ours."""
        try:
            data = json.loads(text)
            files = {
                str(name): FileEntry(int(e["size"]), str(e["sha256"]))
                for name, e in data["files"].items()
            }
            return cls(
                files=files,
                version=int(data.get("version", MANIFEST_VERSION)),
                created=str(data.get("created", "")),
                tool_version=str(data.get("tool_version", "")),
                model=data.get("model") if isinstance(data.get("model"), str) else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleError(f"not a qwenchat manifest: {exc}") from exc

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files.values())


def sha256_file(path: Path, buffer_size: int = HASH_BUFFER) -> str:
    digest = hashlib.sha256()
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


class HashCache:
    """SHA-256 of host files, keyed by (path, size, mtime_ns), in a SQLite file.

    ``hashed`` and ``hits`` count what this instance did: the benchmark and the push report
    use them to show that an unchanged bundle was not re-read.
    """

    def __init__(self, path: Path | None = None) -> None:
        if path is None:

            path = cache_dir() / "hashes.sqlite"
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS file_hash ("
            " path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
            " sha256 TEXT NOT NULL, PRIMARY KEY (path, size, mtime_ns))"
        )
        self._db.commit()
        self.hashed = 0
        self.hits = 0
        self.bytes_hashed = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        st = os.stat(path)
        return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)

    def _lookup(self, key: tuple[str, int, int]) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM file_hash WHERE path=? AND size=? AND mtime_ns=?", key
            ).fetchone()
        return row[0] if row else None

    def _store(self, key: tuple[str, int, int], sha: str) -> None:
        with self._lock:
            # One row per path: an older (size, mtime) of the same file is stale.
            self._db.execute("DELETE FROM file_hash WHERE path=?", (key[0],))
            self._db.execute("INSERT INTO file_hash VALUES (?, ?, ?, ?)", (*key, sha))
            self._db.commit()

    def sha256_many(self, paths: Iterable[Path], workers: int = 2) -> dict[Path, str]:
        """SHA-256 of each path; cached ones are not read, the rest hash on ``workers`` threads."""
        result: dict[Path, str] = {}
        todo: list[tuple[Path, tuple[str, int, int]]] = []
        for path in paths:
            key = self._key(path)
            sha = self._lookup(key)
            if sha is None:
                todo.append((path, key))
            else:
                self.hits += 1
                result[path] = sha
        if todo:
            # Largest first so two threads finish together.
            todo.sort(key=lambda item: -item[1][1])

            def work(item: tuple[Path, tuple[str, int, int]]) -> tuple[Path, str]:
                path, key = item
                sha = sha256_file(path)
                # A file changed while hashing must not be cached under its old stat.
                if self._key(path) == key:
                    self._store(key, sha)
                return path, sha

            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for path, sha in pool.map(work, todo):
                    result[path] = sha
                    self.hashed += 1
                    self.bytes_hashed += path.stat().st_size
        return result
