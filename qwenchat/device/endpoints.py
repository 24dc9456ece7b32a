"""TCP phones the user told us about with ``qwenchat connect HOST:PORT``.

Kept in ``<data dir>/endpoints.json`` so later commands find them without ``--connect``, the
way Google's adb server remembers ``adb connect``. Written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from qwenchat.errors import ConfigError, UsageError
from qwenchat.paths import data_dir

DEFAULT_ADB_TCP_PORT = 5555


@dataclass(frozen=True, order=True)
class Endpoint:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.address


def parse_endpoint(text: str) -> Endpoint:
    """``HOST[:PORT]`` (port 5555 by default, like ``adb connect``); IPv6 as ``[::1]:PORT``."""
    value = text.strip()
    if not value:
        raise UsageError("empty address", "Give HOST:PORT, e.g. 192.168.1.20:5555.")
    host, port_text = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif ":" in value:
        import ipaddress

        try:  # a bare IPv6 address takes the default port; anything else is a typo
            ipaddress.IPv6Address(value)
        except ValueError:
            raise UsageError(
                f"bad address {text!r}: more than one ':'",
                "Give HOST:PORT, e.g. 192.168.1.20:5555 (IPv6: [::1]:5555).",
            ) from None
    if not host:
        raise UsageError(f"no host in {text!r}", "Give HOST:PORT, e.g. 192.168.1.20:5555.")
    if not port_text:
        return Endpoint(host, DEFAULT_ADB_TCP_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"bad port in {text!r}", "Give HOST:PORT, e.g. 192.168.1.20:5555.")
    return Endpoint(host, int(port_text))


def looks_like_endpoint(text: str) -> bool:
    try:
        parse_endpoint(text)
    except UsageError:
        return False
    return ":" in text


def _path() -> Path:

    return data_dir() / "endpoints.json"


def load_endpoints() -> list[Endpoint]:
    path = _path()
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        return [Endpoint(str(item["host"]), int(item["port"])) for item in data["endpoints"]]
    except (ValueError, KeyError, TypeError) as exc:

        raise ConfigError(
            f"{path} is not a valid endpoints file: {exc}",
            f"Delete {path} and `qwenchat connect HOST:PORT` again.",
        ) from exc


def _save(endpoints: list[Endpoint]) -> None:
    path = _path()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    data = {"endpoints": [{"host": e.host, "port": e.port} for e in sorted(set(endpoints))]}
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def remember(endpoint: Endpoint) -> bool:
    """Add an endpoint; False when it was already known."""
    known = load_endpoints()
    if endpoint in known:
        return False
    _save([*known, endpoint])
    return True


def forget(endpoint: Endpoint) -> bool:
    """Remove an endpoint; False when it was not known."""
    known = load_endpoints()
    if endpoint not in known:
        return False
    _save([e for e in known if e != endpoint])
    return True
