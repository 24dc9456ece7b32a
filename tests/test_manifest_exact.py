"""The bundle manifest and push journal formats byte for byte, and the host hash cache's
counts, against hand-written text and digests computed by coreutils' sha256sum."""

from __future__ import annotations

import json
import os
import threading

import pytest

from qwenchat.errors import BundleError
from qwenchat.manifest import (
    BundleManifest,
    FileEntry,
    HashCache,
    PushJournal,
    bundle_id_of,
    sha256_file,
)

ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
OTHER = "0" * 63 + "f"
# sha256sum of b"a.bin\0" b"3\0" ABC b"\n" b"b/c.json\0" b"12\0" OTHER b"\n"
BUNDLE_ID = "13719b2c602a9df44929978509fc3521985e652b40ef3578708291c85e98ca3e"
FILES = {"b/c.json": FileEntry(12, OTHER), "a.bin": FileEntry(3, ABC)}


def test_bundle_id_hashes_sorted_names_sizes_and_hashes():
    assert bundle_id_of(FILES) == BUNDLE_ID
    assert bundle_id_of(dict(reversed(list(FILES.items())))) == BUNDLE_ID
    assert bundle_id_of({}) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_manifest_json_is_exactly_this():
    m = BundleManifest(files=dict(FILES), created="2026-01-02T03:04:05+00:00",
                       tool_version="qwenchat 9", model="qwen2-7b-instruct", soc="SM8750",
                       arch="v79", qairt_version="2.37.1", binaries_qairt_version=None)
    assert json.loads(m.to_json()) == {
        "version": 2, "bundle_id": BUNDLE_ID, "created": "2026-01-02T03:04:05+00:00",
        "tool_version": "qwenchat 9", "model": "qwen2-7b-instruct", "soc": "SM8750",
        "arch": "v79", "qairt_version": "2.37.1", "binaries_qairt_version": None,
        "files": {"a.bin": {"size": 3, "sha256": ABC}, "b/c.json": {"size": 12, "sha256": OTHER}},
    }
    assert m.to_json().startswith('{\n  "version": 2,\n  "bundle_id": ')
    assert m.total_size == 15


def test_reading_a_manifest_keeps_only_real_text_fields_and_defaults_version_1():
    doc = {"files": {"x": {"size": "7", "sha256": ABC}}, "model": "", "soc": 5, "arch": "v75"}
    m = BundleManifest.from_json(json.dumps(doc))
    assert (m.version, m.model, m.soc, m.arch, m.created, m.tool_version) == (
        1, None, None, "v75", "", "",
    )
    assert m.files == {"x": FileEntry(7, ABC)}


def test_a_manifest_whose_files_do_not_hash_to_its_id_is_refused():
    doc = json.loads(BundleManifest(files=dict(FILES)).to_json())
    doc["files"]["a.bin"]["size"] = 4
    with pytest.raises(BundleError, match="does not match its bundle_id"):
        BundleManifest.from_json(json.dumps(doc))
    for bad in ("[]", '{"nofiles": 1}', '{"files": {"x": {"size": "big", "sha256": "s"}}}'):
        with pytest.raises(BundleError, match="not a qwenchat manifest"):
            BundleManifest.from_json(bad)


def test_identity_ignores_when_and_by_what_tool_a_manifest_was_written():
    a = BundleManifest(files=dict(FILES), created="then", tool_version="old", model="m")
    b = BundleManifest(files=dict(FILES), created="now", tool_version="new", model="m")
    assert a.identity() == b.identity()
    assert a.identity() != BundleManifest(files=dict(FILES), model="other").identity()
    assert a.identity() != BundleManifest(files=dict(FILES), model="m", arch="v79").identity()


def test_journal_text_is_exactly_this():
    j = PushJournal(BUNDLE_ID, None, {"z.bin": FileEntry(3, ABC), "a b.bin": FileEntry(12, OTHER)})
    assert j.text() == (
        f"qwenchat-push-journal 1 {BUNDLE_ID} -\n"
        f"12 {OTHER} a b.bin\n"
        f"3 {ABC} z.bin\n"
    )
    assert PushJournal("id", "qwen2").header() == "qwenchat-push-journal 1 id qwen2\n"


def test_journal_parse_keeps_whole_valid_lines_only():
    text = (
        "qwenchat-push-journal 1 ID llama\n"
        f"3 {ABC} a b.bin\n"  # a name with a space
        f"x {ABC} bad-size\n"
        f"3 {ABC.upper()} bad-hash\n"
        f"3 {ABC[:-1]} short-hash\n"
        f"3 {ABC} \n"  # no name
        f"5 {OTHER} torn"  # no newline: torn by an interruption
    )
    j = PushJournal.parse(text)
    assert (j.bundle_id, j.model) == ("ID", "llama")
    assert j.verified == {"a b.bin": FileEntry(3, ABC)}
    assert PushJournal.parse(text + "\n").verified["torn"] == FileEntry(5, OTHER)
    assert PushJournal.parse("qwenchat-push-journal 1 ID -\n").model is None


@pytest.mark.parametrize("text", [
    "", "\n", "qwenchat-push-journal 2 ID -\n", "qwenchat-push-journal 1 ID\n",
    "qwenchat-push-journal 1 ID - extra\n", "other-format 1 ID -\n",
])
def test_journal_parse_refuses_what_is_not_a_journal(text):
    assert PushJournal.parse(text) is None


def test_sha256_file_across_buffer_boundaries(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    for size in (1, 2, 3, 4, 1 << 20):
        assert sha256_file(f, buffer_size=size) == ABC
    f.write_bytes(b"hello world\n")
    assert sha256_file(f, 5) == "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
    with pytest.raises(BundleError, match="cannot read"):
        sha256_file(tmp_path / "missing")


def test_hash_cache_counts_what_it_read_and_what_it_reused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"abc")
    b.write_bytes(b"hello world\n")
    with HashCache(tmp_path / "c.sqlite") as cache:
        got = cache.sha256_many([a, b], workers=1)
        assert got == {a: ABC, b: "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"}
        assert (cache.hashed, cache.hits, cache.bytes_hashed) == (2, 0, 15)
        cache.sha256_many([a, b])
        assert (cache.hashed, cache.hits, cache.bytes_hashed) == (2, 2, 15)
        cache.sha256_many([a], rehash=True)
        assert (cache.hashed, cache.hits, cache.changed) == (3, 2, [])
    # A new size under the same path replaces the old row: the old stat is never a hit.
    a.write_bytes(b"abcd")
    with HashCache(tmp_path / "c.sqlite") as cache:
        cache.sha256_many([a])
        assert (cache.hashed, cache.hits) == (1, 0)
        rows = cache._db.execute("SELECT COUNT(*) FROM file_hash WHERE path=?",
                                 (str(a.resolve()),)).fetchone()
        assert rows == (1,)


def test_hash_cache_summary_is_computed_once_per_file_version(tmp_path):
    f = tmp_path / "t.json"
    f.write_text("{}")
    calls = []

    def compute(path):
        calls.append(path)
        return {"n": len(calls)}

    with HashCache(tmp_path / "c.sqlite") as cache:
        assert cache.summary(f, "k", compute) == {"n": 1}
        assert cache.summary(f, "k", compute) == {"n": 1}
        assert cache.summary(f, "other", compute) == {"n": 2}
        os.utime(f, ns=(1, 1))
        assert cache.summary(f, "k", compute) == {"n": 3}
        # The new version replaces the old one's row: one row per file and kind.
        rows = cache._db.execute("SELECT COUNT(*) FROM file_summary WHERE path=? AND kind=?",
                                 (str(f.resolve()), "k")).fetchone()  # fmt: skip
        assert rows == (1,)
    assert len(calls) == 3


def test_hash_cache_names_a_file_that_is_not_there(tmp_path):
    missing = tmp_path / "gone.bin"
    with HashCache(tmp_path / "cache.sqlite") as cache, pytest.raises(BundleError) as err:
        cache.sha256_many([missing])
    assert str(err.value).startswith(f"cannot read {missing}: No such file or directory")


def test_a_hash_cache_that_refuses_a_write_still_gives_the_right_hash_and_starts_afresh(tmp_path):
    # SQLite refuses the write (read-only: what a full disk or a locked-down file also give);
    # the push must still get the right hash, and the cache is rebuilt, not left refusing.
    a = tmp_path / "a"
    a.write_bytes(b"abc")
    with HashCache(tmp_path / "c.sqlite") as cache:
        cache._db.execute("PRAGMA query_only = ON")
        assert cache.sha256_many([a]) == {a: ABC}
        assert len(cache.notes) == 1 and cache.notes[0].endswith("rebuilt it")
        assert "readonly" in cache.notes[0]
        cache.sha256_many([a])  # not cached that time; the rebuilt cache takes it now
        assert cache.sha256_many([a]) == {a: ABC} and cache.hits == 1


def test_a_file_that_changes_while_it_is_hashed_is_not_cached_under_its_old_stat(tmp_path):
    # A FIFO is a file whose bytes arrive while it is read, and each write moves its mtime:
    # the hash is of what was read, and no row may claim it for the stat taken before.
    fifo = tmp_path / "growing"
    os.mkfifo(fifo)
    os.utime(fifo, ns=(10**9, 10**9))  # an old stat, certainly not the one after the write

    def writer():
        with open(fifo, "wb") as f:
            f.write(b"abc")

    thread = threading.Thread(target=writer)
    thread.start()
    with HashCache(tmp_path / "c.sqlite") as cache:
        assert cache.sha256_many([fifo]) == {fifo: ABC}
        thread.join()
        rows = cache._db.execute("SELECT COUNT(*) FROM file_hash").fetchone()
    assert rows == (0,)


def test_a_summary_of_a_file_that_changed_while_computed_is_computed_again(tmp_path):
    f = tmp_path / "t.json"
    f.write_text("{}")
    calls = []

    first = f.stat()

    def compute(path):
        calls.append(path)
        if len(calls) == 1:
            path.write_text('{"longer": 1}')  # changed under the computation
        return {"n": len(calls)}

    with HashCache(tmp_path / "c.sqlite") as cache:
        assert cache.summary(f, "k", compute) == {"n": 1}
        # The file as it was before, same size and mtime: what was computed while it changed
        # was never stored for that stat, so it is computed afresh, not served.
        f.write_text("{}")
        os.utime(f, ns=(first.st_atime_ns, first.st_mtime_ns))
        assert cache.summary(f, "k", compute) == {"n": 2}
        assert cache.summary(f, "k", compute) == {"n": 2}  # and that one is kept
