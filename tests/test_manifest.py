"""BundleManifest and the host hash cache (real files, real SQLite)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from qwenchat.errors import BundleError
from qwenchat.manifest import BundleManifest, FileEntry, HashCache, PushJournal, sha256_file


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


# ------------------------------------------------------------------ issue 16: bit rot, cache


def test_rehash_reads_again_and_names_a_file_whose_bytes_changed_under_the_same_stat(tmp_path):
    path = tmp_path / "part.bin"
    path.write_bytes(b"a" * 10000)
    st = os.stat(path)
    with HashCache(tmp_path / "cache.sqlite") as cache:
        first = cache.sha256_many([path])[path]
    path.write_bytes(b"a" * 5000 + b"b" + b"a" * 4999)  # same size...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...same mtime
    now = hashlib.sha256(b"a" * 5000 + b"b" + b"a" * 4999).hexdigest()
    with HashCache(tmp_path / "cache.sqlite") as cache:
        assert cache.sha256_many([path])[path] == first  # trusted: not read
        assert cache.changed == [] and cache.hashed == 0
        assert cache.sha256_many([path], rehash=True)[path] == now
        assert [(c.path, c.cached, c.now) for c in cache.changed] == [(path, first, now)]


def test_a_cache_file_that_is_not_a_database_is_rebuilt_with_one_note(tmp_path):
    db = tmp_path / "hashes.sqlite"
    db.write_bytes(b"this is not SQLite\n" * 100)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    with HashCache(db) as cache:
        assert cache.notes == [
            f"hash cache {db} was damaged (file is not a database); rebuilt it"
        ]
        assert cache.sha256_many([path])[path] == hashlib.sha256(b"x" * 100).hexdigest()
    with HashCache(db) as cache:  # rebuilt for good
        assert cache.notes == [] and cache.sha256_many([path]) and cache.hits == 1


def test_a_cache_with_a_damaged_page_is_rebuilt(tmp_path):
    db = tmp_path / "hashes.sqlite"
    files = []
    for i in range(300):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(str(i).encode() * 50)
        files.append(path)
    with HashCache(db) as cache:
        cache.sha256_many(files)
    raw = bytearray(db.read_bytes())
    assert len(raw) > 4 * 4096
    raw[2 * 4096 : 3 * 4096] = os.urandom(4096)  # one page of the table's b-tree
    db.write_bytes(bytes(raw))
    with HashCache(db) as cache:
        assert len(cache.notes) == 1 and cache.notes[0].startswith(f"hash cache {db} was damaged")
        got = cache.sha256_many(files[:3])
    assert got[files[0]] == hashlib.sha256(b"0" * 50).hexdigest()


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(BundleError) as info:
        sha256_file(Path("/proc/self/mem"))
    assert info.value.message == "cannot read /proc/self/mem: Input/output error"


# ------------------------------------------------------------ manifest v2 and the journal


def test_v2_manifest_round_trip_names_its_bundle_and_refuses_an_edited_file_list():
    m = BundleManifest(
        files={"bundle/a.bin": FileEntry(3, "ab" * 32), "bin/genie-t2t-run": FileEntry(5, "cd" * 32)},
        model="qwen2-7b-instruct",
        soc="SM8750",
        arch="v79",
        qairt_version="2.31.0.250130",
        binaries_qairt_version="2.31.0",
    )
    data = json.loads(m.to_json())
    listing = f"bin/genie-t2t-run\x005\x00{'cd' * 32}\nbundle/a.bin\x003\x00{'ab' * 32}\n"
    assert data["bundle_id"] == hashlib.sha256(listing.encode()).hexdigest()
    back = BundleManifest.from_json(m.to_json())
    assert back.identity() == m.identity() and back.version == 2
    data["files"]["bundle/a.bin"]["size"] = 4
    with pytest.raises(BundleError, match="does not match its bundle_id"):
        BundleManifest.from_json(json.dumps(data))


def test_a_v1_manifest_still_reads():
    old = '{"version": 1, "created": "2026-01-01T00:00:00+00:00", "tool_version": "qwenchat 0.1",'
    old += ' "files": {"bundle/a.bin": {"size": 3, "sha256": "' + "ab" * 32 + '"}}}'
    m = BundleManifest.from_json(old)
    assert (m.version, m.model, m.qairt_version) == (1, None, None)
    assert m.files == {"bundle/a.bin": FileEntry(3, "ab" * 32)}


def test_the_journal_ignores_a_torn_last_line():
    sha = "ef" * 32
    text = f"qwenchat-push-journal 1 {'12' * 32} qwen2-7b-instruct\n10 {sha} bundle/a.bin\n"
    whole = PushJournal.parse(text)
    assert whole.model == "qwen2-7b-instruct" and whole.verified == {
        "bundle/a.bin": FileEntry(10, sha)
    }
    torn = PushJournal.parse(text + f"20 {sha} bundle/b.b")  # the push stopped mid-append
    assert torn.verified == whole.verified
    assert PushJournal.parse("something else\n") is None
    assert PushJournal.parse(whole.text()).verified == whole.verified
