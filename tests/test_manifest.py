"""BundleManifest and the host hash cache (real files, real SQLite)."""

from __future__ import annotations

import hashlib
import os

import pytest

from qwenchat.errors import BundleError
from qwenchat.manifest import BundleManifest, FileEntry, HashCache, sha256_file


def test_sha256_file_matches_hashlib_across_buffer_boundaries(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == want
    assert sha256_file(path, buffer_size=1024 * 1024) == want
    assert sha256_file(path, buffer_size=4096 + 3) == want


def test_manifest_round_trip_and_rejects_other_json():
    m = BundleManifest(files={"bundle/a.bin": FileEntry(3, "ab" * 32)})
    back = BundleManifest.from_json(m.to_json())
    assert back.files == m.files
    assert back.tool_version.startswith("qwenchat ") and back.created
    assert back.total_size == 3
    for bad in ("", "{", '{"files": 3}', '{"files": {"x": {"size": 1}}}', "[]"):
        with pytest.raises(BundleError):
            BundleManifest.from_json(bad)


def test_cache_hits_by_path_size_mtime_and_rehashes_on_change(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 5000)
    b.write_bytes(b"y" * 7000)
    db = tmp_path / "cache.sqlite"
    with HashCache(db) as cache:
        first = cache.sha256_many([a, b])
        assert (cache.hashed, cache.hits) == (2, 0)
        assert first[a] == hashlib.sha256(b"x" * 5000).hexdigest()
    # A new process (new cache object, same file): nothing is read again.
    with HashCache(db) as cache:
        assert cache.sha256_many([a, b]) == first
        assert (cache.hashed, cache.hits) == (0, 2)
        # Same size, new content, new mtime: the stale entry must not be used.
        a.write_bytes(b"z" * 5000)
        st = os.stat(a)
        os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        again = cache.sha256_many([a, b])
        assert again[a] == hashlib.sha256(b"z" * 5000).hexdigest()
        assert again[b] == first[b]
        assert (cache.hashed, cache.hits) == (1, 3)
