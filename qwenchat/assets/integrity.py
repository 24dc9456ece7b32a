"""Is the phone's bundle whole? The one check doctor and run call before trusting it.

A bundle on the phone is either the old one or the new one as a whole: push-assets removes
``manifest.json`` before changing the first file and writes it after the last one is
verified, so a whole bundle is exactly "a manifest, and files that match it". This module
checks that, plus what a manifest alone cannot vouch for:

- no other push is at work (a live lock);
- the genie_config.json Genie will read is the one the manifest records, and every file it
  names (ctx-bins, tokenizer, backend extensions) is one the manifest vouches for: a phone
  where an older qwenchat left a partial manifest after an interrupted push of a different
  bundle holds a mix, and is refused here;
- every file the manifest lists is there with its size (``deep``: and its SHA-256).

One shell call (two with ``deep``), nothing but the config hashed unless asked: cheap
enough to run before every chat or bench.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from qwenchat.assets.lock import parse_lock_section
from qwenchat.assets.phone_state import (
    _MARK,
    _SHA_LINE,
    _split,
    journal_command,
    lock_section_commands,
    parse_journal_section,
)
from qwenchat.device.base import Device
from qwenchat.errors import BundleError, ConfigError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest
from qwenchat.shellwords import quote

_PUSH_AGAIN = "Run `qwenchat push-assets` again: it resumes and makes the bundle whole."
_SECTIONS = ("manifest", "journal", "lock", "config", "sizes", "hashes", "end")


@dataclass
class Verdict:
    """``ok`` with a one-line ``message`` either way; ``state`` for scripts and tests:
    whole | absent | interrupted | pushing | damaged | mixed."""

    ok: bool
    state: str
    message: str
    hint: str = ""
    manifest: BundleManifest | None = None
    problems: list[str] = field(default_factory=list)

    def require(self) -> BundleManifest:
        """The manifest of a whole bundle; BundleError (one line + hint) otherwise."""
        if not self.ok or self.manifest is None:
            raise BundleError(self.message, self.hint)
        return self.manifest


def _bad(state: str, message: str, hint: str = _PUSH_AGAIN, **kw: Any) -> Verdict:
    return Verdict(False, state, message, hint, **kw)


def bundle_integrity(
    device: Device, layout: PhoneLayout | None = None, *, deep: bool = False
) -> Verdict:
    """Whether ``layout.work_dir`` on the phone holds one whole bundle; see the module doc."""
    layout = layout or PhoneLayout()
    work = layout.work_dir
    first = device.shell(
        "; ".join(
            [
                f"echo {_MARK.format('manifest')}",
                f"cat {quote(layout.manifest_path)} 2>/dev/null",
                "echo",
                f"echo {_MARK.format('journal')}",
                journal_command(layout),
                f"echo {_MARK.format('lock')}",
                *lock_section_commands(layout),
                f"echo {_MARK.format('config')}",
                f"cat {quote(layout.config_path)} 2>/dev/null",
                "echo",
                # Sizes of every file of the work dir (saved dialogs and scratch files
                # aside) and the hash of the config Genie will read, in the same round
                # trip: the manifest is judged on the host, with no second call.
                f"echo {_MARK.format('sizes')}",
                f"find {quote(work)} \\( -path {quote(layout.states_dir)} -o -path "
                f"{quote(layout.tmp_dir)} \\) -prune -o -type f -exec stat -c '%s %n' {{}} + "
                "2>/dev/null",
                f"echo {_MARK.format('hashes')}",
                f"sha256sum {quote(layout.config_path)} 2>/dev/null",
                f"echo {_MARK.format('end')}",
            ]
        ),
        timeout=30,
    )
    sections = _split(first.text, _SECTIONS)

    lock = parse_lock_section(sections["lock"])
    if lock.present and lock.stale_reason() is None and not lock.mine():
        return _bad(
            "pushing",
            f"a push is changing the bundle in {work} right now ({lock.describe()})",
            "Wait for it to finish, then try again.",
        )

    if not sections["manifest"].strip():
        journal = parse_journal_section(sections["journal"])
        if journal is not None:
            what = f"{journal.model} " if journal.model else ""
            return _bad(
                "interrupted",
                f"the bundle in {work} is incomplete: a push of {what}bundle "
                f"{journal.bundle_id[:12]} stopped part-way",
            )
        return _bad(
            "absent",
            f"no bundle on the phone ({layout.manifest_path} is missing)",
            "Push one first: `qwenchat push-assets --bundle DIR` (or --device-dir for another).",
        )
    try:
        manifest = BundleManifest.from_json(sections["manifest"])
    except BundleError as exc:
        return _bad("damaged", f"the phone's {layout.manifest_path} is unreadable: {exc.message}")

    names = sorted(manifest.files)
    full = {posixpath.join(work, n): n for n in names}
    config_rel = posixpath.relpath(layout.config_path, work)
    second = {"sizes": sections["sizes"], "hashes": sections["hashes"]}
    if deep:  # a second call: every listed file hashed on the phone
        commands = [
            f"echo {_MARK.format('hashes')}",
            "sha256sum " + " ".join(quote(p) for p in full) + " 2>/dev/null",
            f"echo {_MARK.format('end')}",
        ]
        timeout = 60 + manifest.total_size / 20e6
        deep_hashes = _split(device.shell("; ".join(commands), timeout=timeout).text,
                             ("hashes", "end"))  # fmt: skip
        second["hashes"] += "\n" + deep_hashes["hashes"]

    sizes: dict[str, int] = {}
    for line in second["sizes"].splitlines():
        size_text, _, path = line.partition(" ")
        if size_text.isdigit() and path in full:
            sizes[full[path]] = int(size_text)
    hashes: dict[str, str] = {}
    for line in second["hashes"].splitlines():
        match = _SHA_LINE.match(line.strip())
        if match and match[2] in full:
            hashes[full[match[2]]] = match[1].lower()

    problems = []
    for name in names:
        want = manifest.files[name].size
        if name not in sizes:
            problems.append(f"{name} is missing")
        elif sizes[name] != want:
            problems.append(f"{name} is {sizes[name]:,} bytes, the manifest says {want:,}")
    if problems:
        return _bad(
            "damaged",
            f"the phone's bundle does not match its manifest: {_first(problems)}",
            problems=problems,
        )

    mixed = _config_problems(sections["config"], manifest, hashes.get(config_rel), config_rel, layout)
    if mixed:
        return _bad(
            "mixed",
            f"the phone holds parts of two bundles: {_first(mixed)}",
            problems=mixed,
        )

    if deep:
        bad = [n for n in names if hashes.get(n) != manifest.files[n].sha256]
        if bad:
            problems = [f"{n} has another SHA-256 than the manifest's" for n in bad]
            return _bad(
                "damaged",
                f"the phone's bundle does not match its manifest: {_first(problems)}",
                problems=problems,
            )

    model = f" for {manifest.model}" if manifest.model else ""
    return Verdict(
        True,
        "whole",
        f"bundle {manifest.bundle_id[:12]}{model}: {len(names)} files, "
        f"{manifest.total_size / 1e9:.2f} GB, " + ("SHA-256 verified" if deep else "sizes match"),
        manifest=manifest,
    )


def _first(problems: list[str]) -> str:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def _config_problems(
    text: str, manifest: BundleManifest, config_sha: str | None, config_rel: str, layout: PhoneLayout
) -> list[str]:
    """What makes the config Genie reads disagree with the manifest."""
    from qwenchat.genie.config import parse_genie_config

    entry = manifest.files.get(config_rel)
    if entry is None:
        return [f"the manifest does not vouch for {config_rel}"]
    if config_sha is not None and config_sha != entry.sha256:
        return [f"{config_rel} is not the one the manifest records"]
    try:
        config = parse_genie_config(text, source=f"phone:{layout.config_path}")
    except ConfigError as exc:
        return [f"{config_rel} is unreadable ({exc.message})"]
    bundle_rel = posixpath.relpath(layout.bundle_dir, layout.work_dir)
    wanted = [posixpath.join(bundle_rel, n) for n in config.ctx_bins]
    wanted.append(posixpath.join(bundle_rel, config.tokenizer_path))
    extensions = config.dialog.engine.backend.extensions
    if extensions:
        wanted.append(posixpath.join(bundle_rel, extensions))
    wanted.append(posixpath.relpath(layout.genie_binary, layout.work_dir))
    problems = []
    for rel in wanted:
        norm = posixpath.normpath(rel)
        if norm.startswith("/"):
            inside = posixpath.relpath(norm, layout.work_dir)
            if inside.startswith(".."):
                continue  # a file outside the work dir: not ours to vouch for
            norm = inside
        if norm not in manifest.files:
            problems.append(f"{config_rel} names {norm}, which the manifest does not vouch for")
    return problems
