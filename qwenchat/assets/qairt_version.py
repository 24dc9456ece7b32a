"""Which QAIRT the runtime pushed to the phone is, and which QAIRT the context binaries were
compiled with. Qualcomm's llm_on_genie tutorial and ChatApp require the two to match; a
mismatch typically ends in Genie error 5005 (model load failed) on the phone.

- The runtime's version comes from the SDK folder on the host: a QAIRT SDK has ``sdk.yaml``
  at its root with a ``version:`` line (e.g. ``version: 2.31.0.250130``; onnxruntime's
  tools/python/util/qnn_helpers.py reads it the same way), and unpacks to
  ``qairt/<version>/``, so the folder name is the fallback.
- The binaries' version comes from the bundle's metadata: ``qwenchat fetch`` writes
  ``manifest.json`` with ``tool_versions.qairt`` (AI Hub's tool_versions of the asset or job);
  any JSON metadata file in the bundle with a top-level ``qairt_version`` is accepted too.

AI Hub writes versions as ``v2.31.0.250130151446_114721`` (ai-hub-models issues #168,
#109: release 2.31.0, built 2025-01-30 15:14:46, build 114721) where the SDK's sdk.yaml says
``2.31.0.250130``. What matters is the release and the build date; the time of day and
AI Hub's build number are not in the SDK's string, so they are never compared.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_VERSION = re.compile(r"^v?(\d+(?:\.\d+){1,3}(?:_\d+)?)$")
METADATA_FILES = ("manifest.json", "metadata.json")


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    match = _VERSION.match(value.strip().strip("'\""))
    return match[1] if match else None


def qairt_sdk_version(qairt_dir: Path | None) -> tuple[str | None, str]:
    """(version, where it was read) of a QAIRT SDK folder; (None, why) when unknown."""
    if qairt_dir is None:
        return None, "no QAIRT SDK given"
    qairt_dir = Path(qairt_dir)
    sdk_yaml = qairt_dir / "sdk.yaml"
    try:
        for line in sdk_yaml.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "version" and not line.startswith((" ", "\t")):
                version = _clean(value)
                if version:
                    return version, str(sdk_yaml)
    except OSError:
        pass
    version = _clean(qairt_dir.resolve().name)
    if version:
        return version, f"the folder name {qairt_dir.resolve().name}"
    return None, f"no sdk.yaml with a version in {qairt_dir}"


def binaries_qairt_version(bundle_dir: Path) -> tuple[str | None, str]:
    """(version, where) the bundle's context binaries were compiled with; (None, why)."""
    for name in METADATA_FILES:
        path = Path(bundle_dir) / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        tools = data.get("tool_versions")
        for value in (
            data.get("qairt_version"),
            tools.get("qairt") if isinstance(tools, dict) else None,
        ):
            version = _clean(value)
            if version:
                return version, str(path)
    return None, f"no QAIRT version in the metadata of {bundle_dir}"


def _parts(version: str) -> list[int]:
    """The numbers that name a QAIRT build: major, minor, patch, build date (YYMMDD). AI Hub's
    ``250130151446_114721`` (date, time, build number) keeps its date only."""
    fields = version.strip().lstrip("v").split(".")
    if len(fields) > 3:
        fields[3] = fields[3].split("_", 1)[0][:6]
    return [int(x) for x in fields[:4]]


def versions_match(a: str, b: str) -> bool:
    """Same release: the numbers both give agree (2.31.0 matches 2.31.0.250130 and AI Hub's
    v2.31.0.250130151446_114721; a build date is only compared when both carry one)."""
    try:
        pa, pb = _parts(a), _parts(b)
    except ValueError:  # a tag such as "2.31.0-rc1": only the same text is the same release
        return a.strip() == b.strip()
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def mismatch_warning(
    runtime: str | None, runtime_where: str, binaries: str | None, binaries_where: str
) -> str | None:
    """One line when both versions are known and differ; None otherwise."""
    if runtime is None or binaries is None or versions_match(runtime, binaries):
        return None
    return (
        f"QAIRT mismatch: the runtime being pushed is QAIRT {runtime} ({runtime_where}), the "
        f"context binaries were compiled with QAIRT {binaries} ({binaries_where}); Genie may "
        f"refuse to load them (error 5005). Use the QAIRT {binaries} SDK (--qairt)."
    )
