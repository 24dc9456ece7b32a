"""RSA authentication like adbd's: authorized keys in ``state/adb_keys``, one per line.

A key the phone has not seen yet is kept in ``state/pending_keys`` (the "Allow USB
debugging?" dialog) until ``qwenchat emulator authorize`` moves it into ``adb_keys``.
Both files live in ``state/``, outside the phone's file system, so nothing a client runs on
the phone can authorize itself.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

MODULUS_BYTES = 256
# <I nwords><I n0inv><256B modulus LE><256B rr LE><I exponent>
PUBKEY_STRUCT = struct.Struct(f"<II{MODULUS_BYTES}s{MODULUS_BYTES}sI")


class KeyFormatError(ValueError):
    pass


@dataclass(frozen=True)
class AdbPublicKey:
    blob: str  # the base64 text, which identifies the key
    comment: str  # user@host
    key: rsa.RSAPublicKey

    @property
    def line(self) -> str:
        return f"{self.blob} {self.comment}".strip()

    def verify(self, token: bytes, signature: bytes) -> bool:
        """PKCS#1 v1.5 over the token taken as an already computed SHA-1 digest."""
        try:
            self.key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_public_key(text: str | bytes) -> AdbPublicKey:
    """Parse "BASE64 user@host" (what adb sends in AUTH RSAPUBLICKEY and keeps in adbkey.pub)."""
    if isinstance(text, bytes):
        text = text.split(b"\0", 1)[0].decode("ascii", errors="replace")
    fields = text.strip().split(None, 1)
    if not fields:
        raise KeyFormatError("empty public key")
    blob = fields[0]
    comment = fields[1] if len(fields) > 1 else ""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"public key is not base64: {exc}") from exc
    if len(raw) != PUBKEY_STRUCT.size:
        raise KeyFormatError(f"public key has {len(raw)} bytes, expected {PUBKEY_STRUCT.size}")
    nwords, _n0inv, modulus, _rr, exponent = PUBKEY_STRUCT.unpack(raw)
    if nwords != MODULUS_BYTES // 4:
        raise KeyFormatError(f"public key modulus has {nwords} words, expected 64")
    n = int.from_bytes(modulus, "little")
    try:
        key = rsa.RSAPublicNumbers(exponent, n).public_key()
    except ValueError as exc:
        raise KeyFormatError(f"bad RSA public key: {exc}") from exc
    return AdbPublicKey(blob=blob, comment=comment, key=key)


class KeyStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.authorized_path = self.state_dir / "adb_keys"
        self.pending_path = self.state_dir / "pending_keys"

    def _read(self, path: Path) -> list[AdbPublicKey]:
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        keys = []
        for line in lines:
            if line.strip() and not line.startswith("#"):
                try:
                    keys.append(parse_public_key(line))
                except KeyFormatError:
                    continue  # adbd also skips lines it cannot parse
        return keys

    def authorized(self) -> list[AdbPublicKey]:
        return self._read(self.authorized_path)

    def pending(self) -> list[AdbPublicKey]:
        return self._read(self.pending_path)

    def is_authorized(self, key: AdbPublicKey) -> bool:
        return any(k.blob == key.blob for k in self.authorized())

    def _locked(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.state_dir / "keys.lock", "w")  # noqa: SIM115 - closed by caller
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def add_authorized(self, key: AdbPublicKey) -> None:
        with self._locked():
            if not any(k.blob == key.blob for k in self.authorized()):
                with open(self.authorized_path, "a") as f:
                    f.write(key.line + "\n")

    def add_pending(self, key: AdbPublicKey) -> None:
        with self._locked():
            if not any(k.blob == key.blob for k in self.pending()):
                with open(self.pending_path, "a") as f:
                    f.write(key.line + "\n")

    def authorize_pending(self) -> list[AdbPublicKey]:
        """Move every pending key into adb_keys ("always allow"); returns the keys moved."""
        with self._locked():
            known = {k.blob for k in self.authorized()}
            moved = [k for k in self.pending() if k.blob not in known]
            if moved:
                with open(self.authorized_path, "a") as f:
                    for key in moved:
                        f.write(key.line + "\n")
            self.pending_path.unlink(missing_ok=True)
        return moved
