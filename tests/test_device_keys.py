"""The adb key qwenchat shows phones: created where Google's adb keeps it, loaded once per
version of the file (a second connection, such as the one a Ctrl-C stops Genie through,
does not parse it again), and a replaced key is used at once."""

from __future__ import annotations

import os

from qwenchat.device.keys import ensure_adb_key, load_signer


def test_a_missing_key_is_created_in_adbs_format(tmp_path):
    key = ensure_adb_key(tmp_path / "adbkey")
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "adbkey.pub").read_text().split()[0].endswith("=")  # adb's base64 blob
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_the_signer_is_loaded_once_and_again_when_the_key_changes(tmp_path):
    key = ensure_adb_key(tmp_path / "adbkey")
    first = load_signer(key)
    assert load_signer(key) is first
    old_public = first.GetPublicKey()
    key.unlink()
    (tmp_path / "adbkey.pub").unlink()
    ensure_adb_key(key)  # another key in the same place
    st = key.stat()
    os.utime(key, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # even within one tick
    second = load_signer(key)
    assert second is not first and second.GetPublicKey() != old_public
