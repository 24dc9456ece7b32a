"""What a real phone printed, read back through the same code a live run uses.

A capture is the stdout (and stderr, exit code, --profile JSON) of one genie-t2t-run on a
real phone: from a `qwenchat doctor --report` file a user attached to an issue, or from the
public captures in tests/data/real/ (``NAME.stdout.txt`` or ``NAME.console.txt`` with
``NAME.profile.json`` and ``NAME.provenance.json`` beside it). ``replay`` turns it into the
``QueryRecord`` a live run would have produced: the stream parser, the profile parser and the
failure diagnosis are the live ones, so a real phone's output becomes a test case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenchat.errors import QwenchatError, UsageError
from qwenchat.genie.profile import parse_profile
from qwenchat.genie.stream import GenieStreamParser
from qwenchat.runner.record import QueryRecord, TimedEvent, classify

REPORT_FORMAT = "qwenchat-doctor-report/1"
_OUTPUT_SUFFIXES = (".stdout.txt", ".console.txt")


@dataclass
class Capture:
    stdout: bytes
    stderr: str = ""
    exit_code: int | None = None
    profile_json: dict[str, Any] | None = None
    prompt: str | None = None  # the exact prompt text, when known (skips its echo by length)
    source: str = ""  # where it came from, for the printout
    provenance: dict[str, Any] | None = None


def replay(capture: Capture) -> QueryRecord:
    """The record a live run would have made of this output (no host timings: all 0)."""
    record = QueryRecord(engine="replay", started_at=0.0)
    parser = GenieStreamParser(capture.prompt)
    events = parser.feed(capture.stdout) + parser.finish()
    record.events = [TimedEvent(0.0, event) for event in events]
    record.stdout = capture.stdout
    record.stderr = capture.stderr
    record.exit_code = capture.exit_code
    record.outcome = classify(record)
    if capture.profile_json is not None:
        try:
            record.profile = parse_profile(json.dumps(capture.profile_json))
            record.profile_json = capture.profile_json
        except QwenchatError as exc:
            record.notes.append(f"unreadable profile: {exc.message}")
    return record


def load_capture(path: Path) -> Capture:
    """A doctor report (JSON) or a capture in tests/data/real's layout (any of its files)."""
    path = Path(path)
    # A report is known by what it says (its "format"), whatever its name: `doctor --report
    # FILE` writes any name it is given.
    if path.is_file() and (path.suffix == ".json" or _starts_like_json(path)):
        data = _read_json(path)
        if isinstance(data, dict) and data.get("format") == REPORT_FORMAT:
            return _from_report(data, path)
    stem = _capture_stem(path)
    output = next((stem.with_name(stem.name + s) for s in _OUTPUT_SUFFIXES
                   if stem.with_name(stem.name + s).is_file()), None)
    profile = stem.with_name(stem.name + ".profile.json")
    provenance = stem.with_name(stem.name + ".provenance.json")
    if output is None and not profile.is_file():
        raise UsageError(
            f"{path} is neither a `qwenchat doctor --report` file nor a capture",
            hint="Give a report JSON, or NAME.stdout.txt / NAME.console.txt (tests/data/real/).",
        )
    prov = _read_json(provenance) if provenance.is_file() else None
    text = output.read_bytes() if output is not None else b""
    console = output is not None and output.name.endswith(".console.txt")
    exit_code = prov.get("exit_status") if isinstance(prov, dict) else None
    return Capture(
        stdout=text,
        # A console capture mixes both streams: diagnose reads it as stderr too.
        stderr=text.decode("utf-8", errors="replace") if console else "",
        exit_code=exit_code if isinstance(exit_code, int) else None,
        profile_json=_read_json(profile) if profile.is_file() else None,
        source=str(stem),
        provenance=prov if isinstance(prov, dict) else None,
    )


def _starts_like_json(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return False
    return head.startswith(b"{")


def _capture_stem(path: Path) -> Path:
    name = path.name
    for suffix in (*_OUTPUT_SUFFIXES, ".profile.json", ".provenance.json", ".logcat.txt"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def _from_report(data: dict[str, Any], path: Path) -> Capture:
    probe = data.get("probe")
    if not isinstance(probe, dict):
        raise UsageError(f"{path} has no genie-t2t-run run in it (no 'probe' section)")
    return Capture(
        stdout=str(probe.get("stdout", "")).encode("utf-8"),
        stderr=str(probe.get("stderr", "")),
        exit_code=probe.get("exit_code") if isinstance(probe.get("exit_code"), int) else None,
        profile_json=probe.get("profile") if isinstance(probe.get("profile"), dict) else None,
        prompt=probe.get("prompt") if isinstance(probe.get("prompt"), str) else None,
        source=str(path),
        provenance={k: data.get(k) for k in ("device", "qairt", "created") if k in data},
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
