"""The RSA key we show phones when connecting directly (adb-shell).

We reuse Google's adb key (``~/.android/adbkey``): a phone that already trusts the developer's
adb ("Always allow from this computer") then trusts qwenchat too, and the other way round.
When there is none we create one in the same place, in the same format, so Google's adb
picks it up later. ``ADB_VENDOR_KEYS``-style key lists are not supported.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


def adb_key_path() -> Path:
    """Where Google's adb keeps its private key (``$HOME/.android/adbkey``)."""
    android_user_home = os.environ.get("ANDROID_USER_HOME")
    base = Path(android_user_home) if android_user_home else Path.home() / ".android"
    return base / "adbkey"


def ensure_adb_key(path: Path | None = None) -> Path:
    """The key path, after generating a key pair there if it does not exist yet."""
    path = path or adb_key_path()
    if not path.exists():
        from adb_shell.auth.keygen import keygen

        path.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(path))
        path.chmod(0o600)
    elif not Path(f"{path}.pub").exists():
        from adb_shell.auth.keygen import write_public_keyfile

        write_public_keyfile(str(path), f"{path}.pub")
    return path


def load_signer(path: Path | None = None):  # noqa: ANN201 - adb-shell's signer type
    """A signer adb-shell's ``connect(rsa_keys=[...])`` accepts; one per key file and version
    in a process, so a second connection (the side channel a Ctrl-C stops Genie through)
    does not import and parse the key again on the way back to the prompt (~0.3 s)."""
    key = ensure_adb_key(path)
    return _signer(str(key), key.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _signer(path: str, _mtime_ns: int):  # noqa: ANN202
    from adb_shell.auth.sign_cryptography import CryptographySigner

    return CryptographySigner(path)
