"""Finding a Genie export's context binaries and the QAIRT runtime files on the host.

Context binaries are never named by hard-coded strings: they are recognised by the patterns
AI Hub and Qualcomm's tools use and ordered by their part number.

Size rule (documented in the README of push-assets): a context binary is rejected when

- it is empty (0 bytes), or
- the bundle carries its own ``manifest.json`` (qwenchat's format, or any JSON mapping
  file name to ``{"size": N}``) and the file's size differs from the recorded size, or
- it belongs to a multi-part export and is smaller than half the median size of the
  parts: the parts of one export are of similar size (Qwen2-7B: four of 1.1-1.4 GB), so a
  part far below the others is a truncated download or copy.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from qwenchat.errors import BundleError

# (regex, description). Groups: N (part), M (count).
_PART_PATTERNS = (
    re.compile(r"^weight_sharing_model_(?P<n>\d+)_of_(?P<m>\d+)\.serialized\.bin$"),
    re.compile(r"^(?P<id>.+)_part_(?P<n>\d+)_of_(?P<m>\d+)\.bin$"),
    re.compile(r"^part(?P<n>\d+)_of_(?P<m>\d+)\.bin$"),
)
# Names that carry a part number but not the total: Llama-v2-7B-Chat's export writes
# Llama2_Part1_Quantized.bin .. Llama2_Part4_Quantized.bin (ai-hub-models export.py); the
# total is how many there are, and _check_parts still refuses a gap.
_NUMBERED_PATTERN = re.compile(r"^(?P<id>.+)_Part(?P<n>\d+)(?:_Quantized)?\.bin$")


@dataclass(frozen=True)
class ContextBinary:
    path: Path
    part: int
    parts: int
    size: int


def _bin_candidates(bundle_dir: Path) -> list[Path]:
    top = sorted(p for p in bundle_dir.glob("*.bin") if p.is_file())
    if top:
        return top
    # AI Hub zips unpack into a sub-folder: look one level down at most twice.
    return sorted(
        p
        for p in bundle_dir.rglob("*.bin")
        if p.is_file() and len(p.relative_to(bundle_dir).parts) <= 3
    )


def find_context_binaries(bundle_dir: Path) -> list[ContextBinary]:
    """The export's context binaries in part order, checked for completeness and size."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(
            f"bundle folder not found: {bundle_dir}",
            "Pass --bundle DIR: the unzipped AI Hub export holding the context binaries (*.bin).",
        )
    candidates = _bin_candidates(bundle_dir)
    if not candidates:
        raise BundleError(
            f"no context binaries (*.bin) in {bundle_dir}",
            "Unzip the AI Hub export for Qwen2-7B-Instruct into that folder.",
        )
    found: list[ContextBinary] = []
    unmatched: list[Path] = []
    for path in candidates:
        for pattern in _PART_PATTERNS:
            match = pattern.match(path.name)
            if match:
                found.append(
                    ContextBinary(path, int(match["n"]), int(match["m"]), path.stat().st_size)
                )
                break
        else:
            unmatched.append(path)
    if not found:
        numbered = [(p, m) for p in unmatched if (m := _NUMBERED_PATTERN.match(p.name))]
        if numbered and len(numbered) == len(unmatched):
            total = len(numbered)
            found = [ContextBinary(p, int(m["n"]), total, p.stat().st_size) for p, m in numbered]
            unmatched = []
    if not found:
        if len(unmatched) > 1:
            names = ", ".join(p.name for p in unmatched)
            raise BundleError(
                f"cannot tell the order of the context binaries in {bundle_dir}: {names}",
                "Name them NAME_part_N_of_M.bin, or add a genie_config.json listing ctx-bins.",
            )
        only = unmatched[0]
        found = [ContextBinary(only, 1, 1, only.stat().st_size)]
    _check_parts(bundle_dir, found)
    found.sort(key=lambda b: b.part)
    check_sizes(bundle_dir, found)
    return found


def _check_parts(bundle_dir: Path, found: list[ContextBinary]) -> None:
    counts = sorted({b.parts for b in found})
    if len(counts) > 1:
        raise BundleError(
            f"context binaries of different exports mixed in {bundle_dir} "
            f"(parts of {' and '.join(map(str, counts))})",
            "Keep one export per folder.",
        )
    total = counts[0]
    have = sorted(b.part for b in found)
    expected = list(range(1, total + 1))
    if have != expected:
        missing = [n for n in expected if n not in have]
        dupes = sorted({n for n in have if have.count(n) > 1})
        what = []
        if missing:
            what.append("missing part " + ", ".join(f"{n}_of_{total}" for n in missing))
        if dupes:
            what.append("duplicate part " + ", ".join(f"{n}_of_{total}" for n in dupes))
        extra = [n for n in have if n > total or n < 1]
        if extra:
            what.append("part numbers out of range " + ", ".join(map(str, extra)))
        raise BundleError(
            f"incomplete export in {bundle_dir}: {'; '.join(what)}",
            "Download or unzip the whole export again.",
        )


def bundle_recorded_sizes(bundle_dir: Path) -> dict[str, int]:
    """Sizes recorded by the bundle's own manifest.json, if it has one (name → bytes)."""
    path = Path(bundle_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"unreadable manifest.json in {bundle_dir}: {exc}") from exc
    files = data.get("files", data) if isinstance(data, dict) else {}
    sizes: dict[str, int] = {}
    if isinstance(files, dict):
        for name, entry in files.items():
            if isinstance(entry, dict) and isinstance(entry.get("size"), int):
                sizes[Path(name).name] = entry["size"]
    return sizes


def check_sizes(bundle_dir: Path, bins: list[ContextBinary]) -> None:
    recorded = bundle_recorded_sizes(bundle_dir)
    hint = "The file is truncated or damaged: download or copy it again."
    for b in bins:
        if b.size == 0:
            raise BundleError(f"context binary {b.path.name} is empty (0 bytes)", hint)
        want = recorded.get(b.path.name)
        if want is not None and want != b.size:
            raise BundleError(
                f"context binary {b.path.name} is {b.size:,} bytes, "
                f"the bundle's manifest.json says {want:,}",
                hint,
            )
    if len(bins) > 1:
        median = statistics.median(b.size for b in bins)
        for b in bins:
            if b.size < median / 2:
                raise BundleError(
                    f"context binary {b.path.name} is {b.size:,} bytes, less than half the "
                    f"median part size ({int(median):,} bytes)",
                    hint,
                )


# --- QAIRT runtime ------------------------------------------------------------------------

_LIBS = (
    "libGenie.so",
    "libQnnHtp.so",
    "libQnnSystem.so",
    "libQnnHtpNetRunExtensions.so",
    "libQnnHtpPrepare.so",
)


@dataclass(frozen=True)
class RuntimeFiles:
    genie_binary: Path
    libs: tuple[Path, ...]  # go to <work>/lib
    skel: Path  # goes to <work>/skel
    # genie-app (QAIRT's script-driven tool: chat's session engine keeps the model loaded
    # with it); optional: SDKs without it still run every turn with genie-t2t-run.
    genie_app: Path | None = None


def find_runtime_files(qairt_dir: Path | None, arch: str) -> RuntimeFiles:
    """genie-t2t-run, the host-side libraries and the DSP skel for Hexagon ``arch`` (e.g. v79)."""
    if qairt_dir is None:
        raise BundleError(
            "no QAIRT SDK given",
            "Pass --qairt DIR or set QAIRT_HOME to a QAIRT SDK install (it holds bin/ and lib/).",
        )
    qairt_dir = Path(qairt_dir)
    if not qairt_dir.is_dir():
        raise BundleError(
            f"QAIRT SDK folder not found: {qairt_dir}",
            "Pass --qairt DIR or set QAIRT_HOME to a QAIRT SDK install (it holds bin/ and lib/).",
        )
    digits = arch.lower().lstrip("v")
    android_lib = qairt_dir / "lib" / "aarch64-android"
    needed = [qairt_dir / "bin" / "aarch64-android" / "genie-t2t-run"]
    libs = [android_lib / name for name in _LIBS] + [android_lib / f"libQnnHtpV{digits}Stub.so"]
    skel = qairt_dir / "lib" / f"hexagon-v{digits}" / "unsigned" / f"libQnnHtpV{digits}Skel.so"
    needed += libs + [skel]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        first = missing[0].relative_to(qairt_dir)
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BundleError(
            f"QAIRT SDK in {qairt_dir} lacks {first} for Hexagon v{digits}{more}",
            "Use a QAIRT SDK that supports this phone's chip (2.28 or newer for v79).",
        )
    app = qairt_dir / "bin" / "aarch64-android" / "genie-app"
    return RuntimeFiles(needed[0], tuple(libs), skel, app if app.is_file() else None)
