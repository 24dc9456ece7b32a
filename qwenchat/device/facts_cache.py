"""What a phone is, remembered between runs, and never trusted past a reboot or a re-flash.

A phone's properties and RAM do not change while it runs, but reading them (``getprop``
lists ~1,000 properties on a real phone, tens of KB) was paid by every one-shot question,
``doctor`` and bench start. The host keeps the last answer per address, with the phone's
identity at that time: its serial, its boot id (``/proc/sys/kernel/random/boot_id``, a new
one at every boot) and its build fingerprint (a new one after a flash or an OTA).

``read_device_info`` stays ONE round trip either way: the command sends the remembered
identity along, and the phone itself compares it with its own and lists the properties and
memory only when they differ (another phone on the address, a reboot, a new build) or
nothing is remembered. Free space is read every time (it changes with every push).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from qwenchat.paths import cache_dir
from qwenchat.shellwords import quote

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
FOLDER = "phone-facts"
VERSION = 1


@dataclass(frozen=True)
class PhoneIdentity:
    serial: str
    boot_id: str
    fingerprint: str

    def key(self) -> str:
        return f"{self.serial}|{self.boot_id}|{self.fingerprint}"


@dataclass(frozen=True)
class CachedFacts:
    identity: PhoneIdentity
    props: dict[str, str]
    ram_mb: int | None


def identity_command() -> str:
    """Shell text setting ``$qc_id`` to the phone's identity key (``PhoneIdentity.key``)."""
    return (
        f"qc_id=\"$(getprop ro.serialno)|$(cat {BOOT_ID_PATH} 2>/dev/null)|"
        "$(getprop ro.build.fingerprint)\""
    )


def parse_identity(line: str) -> PhoneIdentity | None:
    parts = line.strip().split("|")
    if len(parts) != 3:
        return None
    return PhoneIdentity(*parts)


def unchanged_test(cached: CachedFacts | None) -> str:
    """A shell test true when the phone is still the remembered one (always false when
    nothing is remembered, or the phone has no boot id to vouch for a boot)."""
    if cached is None or not cached.identity.boot_id:
        return "false"
    return f"[ \"$qc_id\" = {quote(cached.identity.key())} ]"


def _path(address: str) -> Path:
    digest = hashlib.sha256(address.encode("utf-8")).hexdigest()[:24]
    return cache_dir() / FOLDER / f"{digest}.json"


def load(address: str) -> CachedFacts | None:
    """What was read at ``address`` last time; None when nothing (or nothing readable)."""
    try:
        data = json.loads(_path(address).read_text(encoding="utf-8"))
        if data.get("version") != VERSION or data.get("address") != address:
            return None
        ident = PhoneIdentity(**data["identity"])
        props = {str(k): str(v) for k, v in data["props"].items()}
        ram = data.get("ram_mb")
        return CachedFacts(ident, props, ram if isinstance(ram, int) else None)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def store(address: str, facts: CachedFacts) -> None:
    """Remember ``facts`` for ``address`` (atomically: a reader sees the old or the new)."""
    path = _path(address)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": VERSION,
        "address": address,
        "identity": {
            "serial": facts.identity.serial,
            "boot_id": facts.identity.boot_id,
            "fingerprint": facts.identity.fingerprint,
        },
        "props": facts.props,
        "ram_mb": facts.ram_mb,
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache only costs the next run a getprop
