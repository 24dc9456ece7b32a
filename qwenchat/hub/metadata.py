"""The record a fetched bundle carries: what it is, where it came from, what built it.

``fetch`` writes it as the bundle's ``manifest.json`` before the bundle folder is renamed
into place, so a bundle and its record arrive together. The ``files`` mapping (name ->
``{"size": N, ...}``) is the form ``push-assets`` already reads from a bundle's own
manifest.json to refuse a truncated part; the rest says which model, runtime, chipset and
precision the binaries are, the source (release asset URL with its size and hashes, or the
AI Hub job) and ``tool_versions`` -- above all the QAIRT version the context binaries were
compiled with, which must match the QAIRT runtime pushed to the phone.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

METADATA_FILE = "manifest.json"
FORMAT = "qwenchat-hub-bundle/1"


def file_entries(bundle: Path, zip_path: Path | None = None) -> dict[str, dict]:
    """Name -> size (and the zip's CRC-32, which extraction has just verified) per file."""
    crcs: dict[str, int] = {}
    if zip_path is not None:
        with zipfile.ZipFile(zip_path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    crcs[info.filename] = info.CRC
    entries: dict[str, dict] = {}
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle).as_posix()
        if rel == METADATA_FILE:
            continue
        entry: dict = {"size": path.stat().st_size}
        # The library's extractor unwraps one top folder: match members by their tail.
        crc = next((c for n, c in crcs.items() if n == rel or n.endswith("/" + rel)), None)
        if crc is not None:
            entry["crc32"] = f"{crc:08x}"
        entries[rel] = entry
    return entries


def write_metadata(bundle: Path, record: dict) -> None:
    """Write the record into ``bundle`` (a staging folder, before it is renamed into place)."""
    own = bundle / METADATA_FILE
    if own.exists():
        # The export brought a manifest.json of its own: keep it under another name.
        own.replace(bundle / "manifest.aihub.json")
    data = {
        "format": FORMAT,
        "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
        **record,
    }
    tmp = bundle / (METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(own)


def read_metadata(bundle_dir: Path | str) -> dict | None:
    """The record of a bundle qwenchat fetched; None for any other folder."""
    try:
        data = json.loads((Path(bundle_dir) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def bundle_qairt_version(bundle_dir: Path | str) -> str | None:
    """The QAIRT version the bundle's context binaries were compiled with, when known.

    Known for a bundle ``qwenchat fetch`` made: from the release index's tool_versions of
    the asset, or from the AI Hub job's target model. None for a folder of unknown origin
    or when AI Hub did not say.
    """
    data = read_metadata(bundle_dir)
    if data is None:
        return None
    versions = data.get("tool_versions")
    if not isinstance(versions, dict):
        return None
    qairt = versions.get("qairt")
    return qairt.strip() if isinstance(qairt, str) and qairt.strip() else None
