"""What ``qwenchat clean`` removes from the phone's work dir, and removing it.

Default: dialog states and temporary files (cheap to lose). Every live genie-app session
(chat's session engine keeps the model loaded in one) is ended first, whoever started it:
nothing of qwenchat's keeps running on the phone after a clean. ``--bundle`` adds the model
bundle, the runtime and the manifest (the manifest first, so an interrupted clean never
leaves a manifest describing files that are gone). ``--all``: the whole work dir.
"""

from __future__ import annotations

import posixpath

from qwenchat.assets.phone_state import journal_path
from qwenchat.device.base import Device
from qwenchat.errors import DeviceCommandError, UsageError
from qwenchat.layout import PhoneLayout
from qwenchat.runner import stop_sessions
from qwenchat.shellwords import quote


def _safe_work_dir(work_dir: str) -> str:
    normalized = posixpath.normpath(work_dir)
    parts = [p for p in normalized.split("/") if p]
    # `rm -rf` of "/data/local/tmp" or shallower would hit other apps' files.
    if not normalized.startswith("/") or len(parts) < 4:
        raise UsageError(
            f"refusing to clean {work_dir!r}: not a dedicated work dir",
            "Give --device-dir a folder of its own, e.g. /data/local/tmp/qwenchat.",
        )
    return normalized


def clean_targets(work_dir: str, *, bundle: bool = False, everything: bool = False) -> list[str]:

    layout = PhoneLayout(_safe_work_dir(work_dir))
    if everything:
        return [layout.work_dir]
    targets = [layout.states_dir, layout.tmp_dir]
    if bundle:
        # The manifest goes first: from the first removal on, nothing looks whole.
        targets = [
            layout.manifest_path,
            journal_path(layout),
            layout.bundle_dir,
            layout.bin_dir,
            layout.lib_dir,
            layout.skel_dir,
            *targets,
        ]
    return targets


def stop_live_sessions(device: Device, work_dir: str) -> int:
    """End every genie-app session under ``work_dir`` (its files go with it); how many."""
    return stop_sessions(device, PhoneLayout(_safe_work_dir(work_dir)))


def remove_targets(device: Device, targets: list[str]) -> int:
    """Remove the paths; bytes freed, from ``df`` before and after (KiB resolution)."""
    parent = posixpath.dirname(targets[0].rstrip("/"))
    before = _free_kib(device, parent)
    result = device.shell("rm -rf " + " ".join(quote(t) for t in targets), timeout=300.0)
    if not result.ok:
        raise DeviceCommandError(
            f"rm on the phone failed: {(result.error_text or result.text).strip()[:200]}"
        )
    after = _free_kib(device, parent)
    if before is None or after is None:
        return 0
    return max(0, after - before) * 1024


def _free_kib(device: Device, path: str) -> int | None:
    result = device.shell(f"df -k {quote(path)} 2>/dev/null || df -k /data")
    lines = [line for line in result.text.splitlines() if line.strip()]
    numbers = [f for f in " ".join(lines[1:]).split() if f.isdigit()]
    return int(numbers[2]) if len(numbers) >= 3 else None
