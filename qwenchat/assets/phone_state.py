"""What the phone holds, learned in ONE shell call: manifest, push journal, lock, file sizes,
free space.

An unchanged 5 GB bundle must be re-pushed in well under two seconds, so nothing is hashed
and nothing is asked twice: the manifest says what the files were when they were verified,
``stat`` says they are still that size, ``df`` says how much room is left, and the lock
section says whether another push is at work.

Also the home of ``bundle_integrity`` (in ``integrity.py``, re-exported here): the one check
doctor and run call before trusting the phone's bundle.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from qwenchat.assets.lock import LockInfo, lock_paths, parse_lock_section
from qwenchat.device.base import Device
from qwenchat.errors import BundleError, DeviceCommandError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest, PushJournal
from qwenchat.shellwords import quote

PARTIAL_SUFFIX = ".partial"
JOURNAL_NAME = ".push-journal"
_MARK = "__qwenchat_push_{}__"
_SECTIONS = ("mkdir", "manifest", "journal", "lock", "sizes", "df", "model", "end")
_SHA_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+)$")


def journal_path(layout: PhoneLayout) -> str:
    return posixpath.join(layout.work_dir, JOURNAL_NAME)


_JOURNAL_END = "__qwenchat_journal_end__"


def journal_command(layout: PhoneLayout) -> str:
    """Print the journal followed by an end mark right after its last byte, so a torn last
    line (no newline: the push stopped mid-append) can be told from a whole one."""
    return f"cat {quote(journal_path(layout))} 2>/dev/null && echo {_JOURNAL_END}"


def parse_journal_section(section: str) -> PushJournal | None:
    if _JOURNAL_END not in section:
        return None
    return PushJournal.parse(section[: section.rindex(_JOURNAL_END)])


@dataclass
class PhoneState:
    manifest: BundleManifest | None
    sizes: dict[str, int] = field(default_factory=dict)  # relative path → bytes (present files)
    partial_sizes: dict[str, int] = field(default_factory=dict)  # relative path → .partial bytes
    free_bytes: int | None = None
    model: str = ""
    journal: PushJournal | None = None
    lock: LockInfo | None = None  # None: no lock file
    manifest_damaged: str | None = None  # why a manifest.json present could not be read
    # The raw answers, to tell whether anything changed between two reads.
    fingerprint: tuple = ()

    @property
    def simulated(self) -> bool:
        # model section holds ro.product.model then ro.qwenchat.simulated
        lines = self.model.splitlines()
        return "SIMULATED" in self.model.upper() or (len(lines) > 1 and lines[1].strip() == "1")

    @property
    def known(self) -> dict:
        """Files the phone vouches for at their final names: the manifest's when there is
        one (a whole bundle), else those an interrupted push verified (its journal)."""
        if self.manifest is not None:
            return dict(self.manifest.files)
        if self.journal is not None:
            return dict(self.journal.verified)
        return {}


def _split(text: str, sections: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, name in enumerate(sections[:-1]):
        start = text.find(_MARK.format(name))
        stop = text.find(_MARK.format(sections[i + 1]))
        if start < 0 or stop < 0:
            raise DeviceCommandError(
                "the phone's shell gave an unexpected answer while reading its work dir",
                "Run `qwenchat doctor` to check the phone's shell.",
            )
        out[name] = text[start + len(_MARK.format(name)) : stop].strip("\n")
    return out


def parse_df_available(text: str) -> int | None:
    """Bytes available from ``df -k DIR`` (toybox and GNU print the same columns)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    # "Filesystem 1K-blocks Used Available Use% Mounted-on": Available is 3rd from the end.
    if len(fields) < 4:
        return None
    try:
        return int(fields[-3]) * 1024
    except ValueError:
        return None


def read_phone_state(device: Device, layout: PhoneLayout, remotes: list[str]) -> PhoneState:
    """One shell call: create the work dirs, read manifest, journal and lock, stat every
    file, df, model."""
    work = layout.work_dir
    dirs = sorted({posixpath.dirname(posixpath.join(work, r)) for r in remotes} | {work})
    paths = []
    for r in remotes:
        full = posixpath.join(work, r)
        paths += [full, full + PARTIAL_SUFFIX]
    stat_args = " ".join(quote(p) for p in paths)
    command = "; ".join(
        [
            f"echo {_MARK.format('mkdir')}",
            f"mkdir -p {' '.join(quote(d) for d in dirs)} || echo failed",
            f"echo {_MARK.format('manifest')}",
            f"cat {quote(layout.manifest_path)} 2>/dev/null",
            "echo",
            f"echo {_MARK.format('journal')}",
            journal_command(layout),
            f"echo {_MARK.format('lock')}",
            *lock_section_commands(layout),
            f"echo {_MARK.format('sizes')}",
            f"stat -c '%s %n' {stat_args} 2>/dev/null",
            f"echo {_MARK.format('df')}",
            f"df -k {quote(work)} 2>/dev/null",
            f"echo {_MARK.format('model')}",
            "getprop ro.product.model",
            "getprop ro.qwenchat.simulated",  # = qwenchat.device.info.SIMULATED_PROP
            f"echo {_MARK.format('end')}",
        ]
    )
    result = device.shell(command, timeout=30)
    sections = _split(result.text, _SECTIONS)
    if sections["mkdir"].strip():
        detail = (result.error_text or "").strip().splitlines()
        raise DeviceCommandError(
            f"cannot create the work dir {work} on the phone (mkdir failed"
            f"{': ' + detail[-1] if detail else ''})",
            "Choose a --device-dir the shell user may write (under /data/local/tmp).",
        )

    manifest = None
    damaged = None
    if sections["manifest"].strip():
        try:
            manifest = BundleManifest.from_json(sections["manifest"])
        except BundleError as exc:
            damaged = exc.message  # trust nothing it says: hash what looks complete

    prefix = work.rstrip("/") + "/"
    sizes: dict[str, int] = {}
    partial: dict[str, int] = {}
    for line in sections["sizes"].splitlines():
        size_text, _, path = line.partition(" ")
        if not size_text.isdigit() or not path.startswith(prefix):
            continue
        rel = path[len(prefix) :]
        if rel.endswith(PARTIAL_SUFFIX):
            partial[rel[: -len(PARTIAL_SUFFIX)]] = int(size_text)
        else:
            sizes[rel] = int(size_text)
    return PhoneState(
        manifest=manifest,
        sizes=sizes,
        partial_sizes=partial,
        free_bytes=parse_df_available(sections["df"]),
        model=sections["model"].strip(),
        journal=parse_journal_section(sections["journal"]),
        lock=parse_lock_section(sections["lock"]),
        manifest_damaged=damaged,
        fingerprint=(sections["manifest"], sections["journal"], sections["sizes"]),
    )


def lock_section_commands(layout: PhoneLayout) -> list[str]:
    """Shell commands printing the lock file, its mtime, the guard's mtime and the phone's
    clock (what ``parse_lock_section`` reads)."""
    lock, guard = lock_paths(layout)
    return [
        f"echo L; cat {quote(lock)} 2>/dev/null; echo",
        f"echo M; stat -c %Y {quote(lock)} 2>/dev/null",
        f"echo G; stat -c %Y {quote(guard)} 2>/dev/null",
        "echo N; date +%s",
    ]


def sha256_on_phone(
    device: Device, layout: PhoneLayout, remotes: list[str], total_bytes: int
) -> dict[str, str]:
    """SHA-256 of files on the phone (relative path → hex), in one ``sha256sum`` call.

    Files that cannot be read are absent from the result. When the command fails and not
    one file was hashed, the phone's hashing itself is broken: DeviceCommandError, never a
    silent "everything differs" that would send the whole bundle again.
    """
    if not remotes:
        return {}
    work = layout.work_dir.rstrip("/") + "/"
    args = " ".join(quote(work + r) for r in remotes)
    # Phones hash at several hundred MB/s; allow 20 MB/s before calling it hung.
    result = device.shell(f"sha256sum {args}", timeout=60 + total_bytes / 20e6)
    out: dict[str, str] = {}
    for line in result.text.splitlines():
        match = _SHA_LINE.match(line.strip())
        if match and match[2].startswith(work):
            out[match[2][len(work) :]] = match[1].lower()
    if not result.ok and not out:
        # sha256sum also exits 1 when one file is missing (an expected case here), so only
        # a call that hashed nothing at all is a broken tool.
        missing = "No such file" in result.error_text + result.text
        if not missing:
            detail = (result.error_text or result.text).strip().splitlines()
            raise DeviceCommandError(
                f"sha256sum failed on the phone: {detail[-1] if detail else f'exit {result.exit_code}'}",
                "The phone's files cannot be checked; run `qwenchat doctor`.",
            )
    return out


def __getattr__(name: str):  # noqa: ANN202 - lazy re-export (integrity imports this module)
    if name in ("bundle_integrity", "Verdict"):
        from qwenchat.assets import integrity

        return getattr(integrity, name)
    raise AttributeError(name)
