"""``qwenchat doctor --report FILE``: one file a user with a real phone attaches to an issue.

It holds what we cannot see from here: the phone's identity and build (getprop), MemTotal,
free space, the QAIRT and libGenie versions, the bundle manifest, the Genie configs as pushed,
and the complete stdout/stderr/profile/exit code of one short genie-t2t-run (a fixed prompt,
never the user's chats). Serial numbers are replaced by a short hash (the same phone gives the
same hash, so two reports can be matched without naming it); no token or key is read.
``qwenchat replay FILE`` reads it back through the live code.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from datetime import UTC, datetime
from typing import Any

from qwenchat import __version__
from qwenchat.checks.doctor import PROBE_PROMPT, DoctorReport
from qwenchat.device.base import Device
from qwenchat.device.info import parse_getprop
from qwenchat.errors import QwenchatError
from qwenchat.layout import PhoneLayout
from qwenchat.runner.replay import REPORT_FORMAT
from qwenchat.shellwords import quote

# What identifies the phone's hardware and software build; nothing personal.
PROPS = (
    "ro.product.model", "ro.product.manufacturer", "ro.product.brand", "ro.product.device",
    "ro.soc.model", "ro.soc.manufacturer", "ro.board.platform", "ro.hardware",
    "ro.product.cpu.abi", "ro.build.version.release", "ro.build.version.sdk",
    "ro.build.version.security_patch", "ro.build.fingerprint", "ro.build.display.id",
    "ro.build.type", "ro.vendor.build.fingerprint", "ro.qwenchat.simulated",
)
SERIAL_PROPS = ("ro.serialno", "ro.boot.serialno")


def redact_serial(serial: str) -> str:
    return "serial-" + hashlib.sha256(serial.encode()).hexdigest()[:10] if serial else ""


def build_report(device: Device, report: DoctorReport, work_dir: str) -> dict[str, Any]:
    """The report document (JSON-ready) for a doctor run on an open device."""
    layout = PhoneLayout(work_dir)
    props = parse_getprop(device.shell("getprop", timeout=30).text)
    serials = {props.get(k, "") for k in SERIAL_PROPS} | {device.serial}
    info = dict(report.info or {})
    for key in ("serial", "address"):
        if key in info:
            info[key] = redact_serial(str(info[key]))
    doc: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "qwenchat": __version__,
        "simulated": report.simulated,
        "model": report.model,
        "device": {
            "props": {k: props[k] for k in PROPS if k in props},
            "info": info,
        },
        "checks": report.to_dict()["checks"],
        "bundle": {
            "manifest": _read_json(device, layout.manifest_path),
            "genie_config": _read_json(device, layout.config_path),
            "htp_backend_ext_config": _read_json(
                device, posixpath.join(layout.bundle_dir, "htp_backend_ext_config.json")
            ),
            "files": _listing(device, layout),
        },
        "probe": _probe(report),
    }
    return _scrub(doc, {s for s in serials if s})


def _probe(report: DoctorReport) -> dict[str, Any] | None:
    record = report.probe
    if record is None:
        return None
    return {
        "prompt": PROBE_PROMPT,
        "stdout": record.stdout.decode("utf-8", errors="replace"),
        "stderr": record.stderr,
        "exit_code": record.exit_code,
        "profile": record.profile_json,
        "outcome": record.outcome.value,
        "failure": None if record.failure is None else {
            "kind": record.failure.kind, "line": record.failure.message,
        },
        "error": record.error,
        "libgenie_version": record.libgenie_version,
        "host_clock": {
            "first_token_s": record.host_first_token_s,
            "total_s": record.host_total_s,
        },
    }


def _read_json(device: Device, path: str) -> Any:
    try:
        if device.stat(path) is None:
            return None
        raw = device.pull_bytes(path)
    except QwenchatError as exc:
        return {"unreadable": exc.message}
    try:
        return json.loads(raw)
    except ValueError:
        return {"not_json": raw[:2000].decode("utf-8", errors="replace")}


def _listing(device: Device, layout: PhoneLayout) -> str:
    """``ls -l`` of the work dir's runtime folders: names, sizes, modes (what Genie meets)."""
    dirs = [layout.bundle_dir, layout.bin_dir, layout.lib_dir, layout.skel_dir]
    result = device.shell("ls -l " + " ".join(quote(d) for d in dirs) + " 2>&1", timeout=30)
    return result.text


def _scrub(doc: Any, secrets: set[str]) -> Any:
    """Every occurrence of a serial, anywhere in the document, replaced by its hash."""
    text = json.dumps(doc, ensure_ascii=False)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:  # too short to be an identifier, and would mangle the JSON
            text = text.replace(secret, redact_serial(secret))
    return json.loads(text)
