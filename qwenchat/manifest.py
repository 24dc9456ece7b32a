"""What a bundle holds (size + SHA-256 per file), the record of a push in progress, and a
host-side cache of file hashes.

On the phone, ``manifest.json`` only ever describes a WHOLE bundle: push-assets removes it
before it changes the first file and writes it after the last one is verified. While a push
is under way (or after one was interrupted) ``.push-journal`` says which bundle is being put
there and which of its files are already verified in place, so the next run resumes without
re-hashing them.

Hashing 5 GB takes ~10 s even at disk speed, so each host file's SHA-256 is computed once and
cached by (absolute path, size, mtime_ns): an unchanged bundle is re-pushed without reading
a byte of it. hashlib releases the GIL on large buffers, so two files hash in parallel on
two threads. ``--verify`` re-reads them anyway and reports a file whose bytes changed while
its size and mtime did not (bit rot, or an edit that restored the mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qwenchat import __version__
from qwenchat.errors import BundleError
from qwenchat.paths import cache_dir

MANIFEST_VERSION = 2  # 2: bundle_id, soc/arch, QAIRT versions. 1 (files + model) still reads.
HASH_BUFFER = 4 * 1024 * 1024  # big enough that hashlib runs without the GIL most of the time
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


def bundle_id_of(files: dict[str, FileEntry]) -> str:
    """One hash naming a bundle: its file names, sizes and hashes (order does not matter)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        entry = files[name]
        digest.update(f"{name}\0{entry.size}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


@dataclass
class BundleManifest:
    """Relative path (under the phone's work dir) → size and SHA-256, plus what the bundle is."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    tool_version: str = f"qwenchat {__version__}"
    # The ModelSpec name the bundle was assembled for (None: pushed before models were named,
    # which only Qwen2-7B-Instruct could be).
    model: str | None = None
    soc: str | None = None  # the chip the configs were written for (getprop ro.soc.model)
    arch: str | None = None  # Hexagon arch of the runtime files, e.g. "v79"
    # QAIRT of the runtime pushed (genie-t2t-run, libGenie, the Skel), from the SDK's sdk.yaml,
    # and the QAIRT the context binaries were compiled with (the bundle's metadata). Genie
    # wants the two to match; None: not known.
    qairt_version: str | None = None
    binaries_qairt_version: str | None = None

    @property
    def bundle_id(self) -> str:
        return bundle_id_of(self.files)

    def identity(self) -> tuple:
        """Everything that makes two manifests describe the same bundle (not when or by what
        tool it was written)."""
        return (
            tuple(sorted(self.files.items())),
            self.model,
            self.soc,
            self.arch,
            self.qairt_version,
            self.binaries_qairt_version,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "bundle_id": self.bundle_id,
                "created": self.created,
                "tool_version": self.tool_version,
                "model": self.model,
                "soc": self.soc,
                "arch": self.arch,
                "qairt_version": self.qairt_version,
                "binaries_qairt_version": self.binaries_qairt_version,
                "files": {
                    name: {"size": e.size, "sha256": e.sha256}
                    for name, e in sorted(self.files.items())
                },
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> BundleManifest:
        """Parse a manifest; raises BundleError when it is not one of ours or is damaged."""
        try:
            data = json.loads(text)
            files = {
                str(name): FileEntry(int(e["size"]), str(e["sha256"]))
                for name, e in data["files"].items()
            }

            def text_field(key: str) -> str | None:
                value = data.get(key)
                return value if isinstance(value, str) and value else None

            manifest = cls(
                files=files,
                version=int(data.get("version", 1)),
                created=str(data.get("created", "")),
                tool_version=str(data.get("tool_version", "")),
                model=text_field("model"),
                soc=text_field("soc"),
                arch=text_field("arch"),
                qairt_version=text_field("qairt_version"),
                binaries_qairt_version=text_field("binaries_qairt_version"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleError(f"not a qwenchat manifest: {exc}") from exc
        recorded = data.get("bundle_id")
        if recorded is not None and recorded != manifest.bundle_id:
            # Written by us with this id: a file list that no longer hashes to it was edited
            # or damaged, and must not vouch for anything.
            raise BundleError("manifest damaged: its file list does not match its bundle_id")
        return manifest

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files.values())


# ----------------------------------------------------------------- the push in progress

JOURNAL_MAGIC = "qwenchat-push-journal 1"


@dataclass
class PushJournal:
    """``.push-journal`` on the phone: which bundle a push is putting there, and each file
    already verified in place (one line appended per file, so a torn last line is all an
    interruption can leave; it is ignored)."""

    bundle_id: str
    model: str | None = None
    verified: dict[str, FileEntry] = field(default_factory=dict)

    def header(self) -> str:
        return f"{JOURNAL_MAGIC} {self.bundle_id} {self.model or '-'}\n"

    @staticmethod
    def line(name: str, entry: FileEntry) -> str:
        return f"{entry.size} {entry.sha256} {name}\n"

    def text(self) -> str:
        return self.header() + "".join(self.line(n, e) for n, e in sorted(self.verified.items()))

    @classmethod
    def parse(cls, text: str) -> PushJournal | None:
        """None when ``text`` is not a journal (empty, or another format)."""
        lines = text.split("\n")
        head = lines[0].split(" ")
        if len(head) != 4 or " ".join(head[:2]) != JOURNAL_MAGIC:
            return None
        journal = cls(bundle_id=head[2], model=None if head[3] == "-" else head[3])
        complete = lines[1:-1] if not text.endswith("\n") else lines[1:]
        for line in complete:
            size, _, rest = line.partition(" ")
            sha, _, name = rest.partition(" ")
            if size.isdigit() and _SHA256.match(sha) and name:
                journal.verified[name] = FileEntry(int(size), sha)
        return journal


# ------------------------------------------------------------------------ host hashing


class HashingStopped(Exception):
    """Host hashing was stopped (``stop`` set) before the file's last byte: no hash."""


def sha256_file(
    path: Path, buffer_size: int = HASH_BUFFER, stop: threading.Event | None = None
) -> str:
    """SHA-256 of a host file; BundleError (one line) when it cannot be read.

    ``stop``: checked between reads, so hashing a multi-GB context binary ends within one
    buffer once the caller no longer needs the hash (HashingStopped)."""
    digest = hashlib.sha256()
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                if stop is not None and stop.is_set():
                    raise HashingStopped(str(path))
                digest.update(view[:n])
    except OSError as exc:
        raise BundleError(
            f"cannot read {path}: {exc.strerror or exc}",
            "Check the file's permissions and the disk (a read error can mean a bad sector).",
        ) from None
    return digest.hexdigest()


@dataclass(frozen=True)
class ChangedFile:
    """A host file whose bytes differ from what the cache recorded for the same size+mtime."""

    path: Path
    cached: str
    now: str


class HashCache:
    """SHA-256 of host files, keyed by (path, size, mtime_ns), in a SQLite file.

    ``hashed`` and ``hits`` count what this instance did: the benchmark and the push report
    use them to show that an unchanged bundle was not re-read. A damaged cache file is not
    an error: it is only a cache, so it is set aside and rebuilt, with a line in ``notes``.
    """

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            path = cache_dir() / "hashes.sqlite"
        self.path = Path(path)
        self._lock = threading.Lock()
        self.notes: list[str] = []
        self.hashed = 0
        self.hits = 0
        self.bytes_hashed = 0
        self.changed: list[ChangedFile] = []
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            self._rebuild_note(exc)
            self._set_aside()
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS file_hash ("
                " path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " sha256 TEXT NOT NULL, PRIMARY KEY (path, size, mtime_ns))"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS file_summary ("
                " path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " kind TEXT NOT NULL, summary TEXT NOT NULL,"
                " PRIMARY KEY (path, size, mtime_ns, kind))"
            )
            # A page-level check is cheap on a cache this size and finds damage a single
            # query on an intact page would not.
            ok = db.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {ok[0] if ok else 'no answer'}")
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def _rebuild_note(self, exc: Exception) -> None:
        self.notes.append(f"hash cache {self.path} was damaged ({exc}); rebuilt it")

    def _set_aside(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Damage found mid-run (a page the open check did not reach): start afresh."""
        self._rebuild_note(exc)
        self._db.close()  # sqlite3_close_v2: never fails, even on a damaged file
        self._set_aside()
        self._db = self._connect()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
        return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)

    def _query(self, sql: str, args: tuple) -> Any:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)  # the value is simply not cached this time

    def _lookup(self, key: tuple[str, int, int]) -> str | None:
        row = self._query(
            "SELECT sha256 FROM file_hash WHERE path=? AND size=? AND mtime_ns=?", key
        )
        return row[0] if row else None

    def _store(self, key: tuple[str, int, int], sha: str) -> None:
        # One row per path: an older (size, mtime) of the same file is stale.
        self._write(
            [
                ("DELETE FROM file_hash WHERE path=?", (key[0],)),
                ("INSERT INTO file_hash VALUES (?, ?, ?, ?)", (*key, sha)),
            ]
        )

    def sha256_many(
        self,
        paths: Iterable[Path],
        workers: int = 2,
        *,
        rehash: bool = False,
        stop: threading.Event | None = None,
    ) -> dict[Path, str]:
        """SHA-256 of each path; cached ones are not read, the rest hash on ``workers`` threads.

        ``rehash``: read every file again; one whose bytes no longer match the cached hash
        for the same size and mtime is listed in ``changed``. ``stop``: see sha256_file
        (raises HashingStopped; the files hashed whole before it are cached).
        """
        result: dict[Path, str] = {}
        todo: list[tuple[Path, tuple[str, int, int], str | None]] = []
        for path in paths:
            key = self._key(path)
            sha = self._lookup(key)
            if sha is None or rehash:
                todo.append((path, key, sha))
            else:
                self.hits += 1
                result[path] = sha
        if todo:
            # Largest first so two threads finish together.
            todo.sort(key=lambda item: -item[1][1])

            def work(item: tuple[Path, tuple[str, int, int], str | None]) -> tuple[Path, str]:
                path, key, cached = item
                sha = sha256_file(path, stop=stop)
                # A file changed while hashing must not be cached under its old stat.
                if self._key(path) == key:
                    if cached is not None and cached != sha:
                        self.changed.append(ChangedFile(path, cached, sha))
                    self._store(key, sha)
                return path, sha

            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for path, sha in pool.map(work, todo):
                    result[path] = sha
                    self.hashed += 1
                    self.bytes_hashed += path.stat().st_size
        return result

    def summary(self, path: Path, kind: str, compute: Callable[[Path], dict]) -> dict:
        """``compute(path)`` (a small JSON-able dict of facts about the file), cached by the
        file's (path, size, mtime) like its hash: an 8 MB tokenizer.json is parsed once."""
        key = self._key(path)
        row = self._query(
            "SELECT summary FROM file_summary WHERE path=? AND size=? AND mtime_ns=? AND kind=?",
            (*key, kind),
        )
        if row:
            try:
                return json.loads(row[0])
            except ValueError:
                pass
        value = compute(path)
        if self._key(path) == key:
            self._write(
                [
                    ("DELETE FROM file_summary WHERE path=? AND kind=?", (key[0], kind)),
                    ("INSERT INTO file_summary VALUES (?, ?, ?, ?, ?)",
                     (*key, kind, json.dumps(value))),  # fmt: skip
                ]
            )
        return value
