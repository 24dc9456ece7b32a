"""What fills the phone: the biggest entries where the shell user writes, for a full phone's
hint (issue 31: "what to remove", not only "free some space").

One shell call, made only once the phone said "No space left on device": ``du -sk`` of every
entry beside the work dir (``/data/local/tmp`` holds what adb pushes and what apps under
test leave) and of the work dir's own folders, the biggest first.
"""

from __future__ import annotations

import posixpath

from qwenchat.shellwords import quote

SHOWN = 4
_SPLIT = "qwenchat-work-dir-follows"


def _size(kib: int) -> str:
    if kib >= 1024 * 1024:
        return f"{kib / 1024 / 1024:.1f} GB"
    if kib >= 1024:
        return f"{kib / 1024:.0f} MB"
    return f"{kib} kB"


def biggest(device, work_dir: str) -> str:  # noqa: ANN001 - Device
    """``"/data/local/tmp/big.bin 50 MB, …/qwenchat/states 12 MB"`` ('' when unreadable)."""
    parent = posixpath.dirname(work_dir.rstrip("/")) or "/"
    work = quote(work_dir.rstrip("/"))
    command = (
        f"cd {quote(parent)} 2>/dev/null && du -sk -- * .[!.]* 2>/dev/null; echo {_SPLIT}; "
        f"cd {work} 2>/dev/null && for d in states tmp; do [ -d $d ] && du -sk $d; done; true"
    )
    try:
        text = device.shell(command, timeout=30).text
    except Exception:  # noqa: BLE001 - a hint must never hide the error it explains
        return ""
    rows: list[tuple[int, str]] = []
    beside, _, inside = text.partition(_SPLIT)
    for listing, folder in ((beside, parent), (inside, work_dir)):
        for line in listing.splitlines():
            size, _, name = line.strip().partition("\t")
            if not name:  # a du that separates with blanks
                size, _, name = line.strip().partition(" ")
            if size.isdigit() and name:
                rows.append((int(size), posixpath.join(folder, name)))
    rows.sort(reverse=True)
    return ", ".join(f"{path} {_size(kib)}" for kib, path in rows[:SHOWN] if kib > 0)


def full_hint(device, work_dir: str, base: str) -> str:  # noqa: ANN001
    """``base`` (PhoneFullError's hint) and, when the phone says, what takes its room."""
    hogs = biggest(device, work_dir)
    return f"{base} Biggest now: {hogs}." if hogs else base
