"""Other computers' adb servers, remembered by ``qwenchat connect --adb-server HOST:PORT``.

A device farm (DeviceFarmer/STF, a lab's rack) or a colleague's computer running
``adb -a -P 5037 nodaemon server`` hands its phones out through Google's adb server
protocol; qwenchat speaks that protocol (``server.py``) and needs no agent of its own
there. Kept in ``<data dir>/adb_servers.json``, written atomically (temp file + rename),
like the TCP phones of ``endpoints.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qwenchat.device.endpoints import Endpoint, parse_endpoint
from qwenchat.device.server import DEFAULT_SERVER_PORT
from qwenchat.errors import ConfigError
from qwenchat.paths import data_dir


def parse_server(text: str) -> Endpoint:
    """``HOST[:PORT]`` of an adb server (port 5037 by default, as adb's -H/-P)."""
    endpoint = parse_endpoint(text)
    bare = text.strip()
    has_port = bare.rpartition("]")[2].count(":") == 1 if bare.startswith("[") else ":" in bare
    return endpoint if has_port else Endpoint(endpoint.host, DEFAULT_SERVER_PORT)


def _path() -> Path:
    return data_dir() / "adb_servers.json"


def load_servers() -> list[Endpoint]:
    path = _path()
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        return [Endpoint(str(item["host"]), int(item["port"])) for item in data["servers"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a valid adb servers file: {exc}",
            f"Delete {path} and `qwenchat connect --adb-server HOST:PORT` again.",
        ) from exc


def _save(servers: list[Endpoint]) -> None:
    path = _path()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    data = {"servers": [{"host": s.host, "port": s.port} for s in sorted(set(servers))]}
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def remember_server(server: Endpoint) -> bool:
    """Add a server; False when it was already known."""
    known = load_servers()
    if server in known:
        return False
    _save([*known, server])
    return True


def forget_server(server: Endpoint) -> bool:
    """Remove a server; False when it was not known."""
    known = load_servers()
    if server not in known:
        return False
    _save([s for s in known if s != server])
    return True
