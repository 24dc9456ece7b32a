"""What the emulated phone was asked to do, as adbd logs it: every shell/exec command line
and every sync request, one JSON object per line in ``state/commands.log``.

A record: ``t`` (Unix time), ``conn`` (the connection's number since start), ``kind``
(``shell``, ``exec``, ``sync``), ``what`` (the command line or the path) and details
(``v2``, ``pty``, ``request``); a shell's end is a second record with ``exit`` and ``seconds``.
``qwenchat emulator log`` reads it (``read_records``, ``follow``). The file is rotated to
``commands.log.1`` beyond ``MAX_BYTES``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

FILE = "commands.log"
MAX_BYTES = 8 * 1024 * 1024
MAX_WHAT = 4096


def log_path(root: Path) -> Path:
    return Path(root) / "state" / FILE


class CommandLog:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / FILE
        self._lock = threading.Lock()
        self._next_id = 0

    def _write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
                    os.replace(self.path, self.path.with_name(FILE + ".1"))
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line)
            except OSError:
                pass  # the log must never break the phone

    def record(self, conn: int, kind: str, what: str | None, **details: object) -> int:
        with self._lock:
            self._next_id += 1
            rid = self._next_id
        text = what if what is not None else "(interactive)"
        entry = {"t": round(time.time(), 3), "id": rid, "conn": conn, "kind": kind,
                 "what": text[:MAX_WHAT]}  # fmt: skip
        entry.update({k: v for k, v in details.items() if v is not None})
        self._write(entry)
        return rid

    def finish(self, rid: int, **details: object) -> None:
        entry = {"t": round(time.time(), 3), "id": rid, "kind": "end"}
        entry.update({k: (round(v, 3) if isinstance(v, float) else v)
                      for k, v in details.items() if v is not None})  # fmt: skip
        self._write(entry)


def read_records(root: Path, tail: int | None = None) -> list[dict]:
    path = log_path(root)
    lines: deque[str] = deque(maxlen=tail if tail else None)
    for p in (path.with_name(FILE + ".1"), path):
        try:
            with open(p, encoding="utf-8", errors="replace") as f:
                lines.extend(f)
        except FileNotFoundError:
            continue
    return [r for r in map(_parse, lines) if r is not None]


def _parse(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def follow(root: Path, poll_s: float = 0.2, stop=None) -> Iterator[dict]:  # noqa: ANN001
    """Records appended from now on (also across a rotation), until ``stop()`` is true."""
    path = log_path(root)
    position = path.stat().st_size if path.exists() else 0
    inode = path.stat().st_ino if path.exists() else None
    buffer = ""
    while stop is None or not stop():
        try:
            st = path.stat()
        except FileNotFoundError:
            time.sleep(poll_s)
            continue
        if st.st_ino != inode or st.st_size < position:
            inode, position, buffer = st.st_ino, 0, ""
        if st.st_size > position:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(position)
                buffer += f.read()
                position = f.tell()
            *complete, buffer = buffer.split("\n")
            for line in complete:
                record = _parse(line)
                if record is not None:
                    yield record
        else:
            time.sleep(poll_s)


def format_record(record: dict) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(record.get("t", 0)))
    millis = int((record.get("t", 0) % 1) * 1000)
    head = f"{stamp}.{millis:03d}"
    if record.get("kind") == "end":
        tail = f"exit {record['exit_code']}" if "exit_code" in record else "no exit code"
        if record.get("hung_up"):
            tail = "hung up by the client"
        return f"{head}  #{record.get('id')} ends: {tail} ({record.get('seconds', 0):.3f} s)"
    kind = record.get("kind", "?")
    if kind == "sync":
        what = f"sync {record.get('request', '?')} {record.get('what', '')}"
    else:
        flags = ",".join(x for x in ("v2" if record.get("v2") else "", record.get("pty") or "")
                         if x)  # fmt: skip
        what = f"{kind}{'[' + flags + ']' if flags else ''}: {record.get('what', '')}"
    return f"{head}  #{record.get('id')} conn {record.get('conn')}  {what}"
