"""Every file a per-query run creates on the phone carries its owner; the next run on that
phone removes what dead owners left.

A run that is killed (SIGKILL, a host crash) cannot clean up after itself: its prompt,
profile and config files stay in ``<tmp>``, and a chat's dialog state (``<states>/<id>/``,
hundreds of MB on a real phone: Genie's KV cache) with its config (``<tmp>/session-<id>.json``)
stays for good. So the owner goes with the files:

    <tmp>/prompt-<key>-<uuid>.txt (tokens-<key>-<uuid>.txt as ids), profile-…, config-…
    <tmp>/state-<id>.owner   the owner tag of the chat that made <states>/<id>/ (beside,
                             not inside: Genie's --save owns that folder)

where ``<key>`` is ``o<pid>_<start>_<host>`` (``session_files.owner_tag`` in a file name's
alphabet). ``sweep`` lists the tmp folder and the phone's genie-t2t-run processes in one shell
call and, in one more, stops the Genie of an owner that is gone from this host (a pid that no
longer runs, or runs with another start time: its prompt file on Genie's command line names
it; left running it would write its profile after the sweep) and removes that owner's files. Owners on other hosts are never judged: their files stay for `qwenchat clean`.
Any of them older than ``STALE_MIN`` minutes goes too (files of an older qwenchat carry no
owner; no query lives that long).
"""

from __future__ import annotations

import posixpath
import re

from qwenchat.runner.session_files import Owner, owner_tag
from qwenchat.shellwords import quote

STALE_MIN = 30  # older than any query's life: a prompt is read at start, a profile at exit
KINDS = ("prompt", "tokens", "profile", "config")  # tokens: a prompt sent as token ids
_KEY = re.compile(r"o(\d+)_(\d*)_([A-Za-z0-9.-]+)")
_TAGGED = re.compile(rf"({'|'.join(KINDS)})-(o\d+_\d*_[A-Za-z0-9.-]+)-[0-9a-f]+\.(?:txt|json)")
_SPLIT = "qwenchat-states-follow"
_SPLIT_PS = "qwenchat-processes-follow"
_GENIE_PROMPT = re.compile(r"genie-t2t-run\b.*/(?:prompt|tokens)-(o\d+_\d*_[A-Za-z0-9.-]+)-[0-9a-f]+\.txt")


def file_key(tag: str | None = None) -> str:
    """This process's owner as a file-name word: ``o<pid>_<start>_<host>``."""
    owner = Owner.parse(tag or owner_tag())
    assert owner is not None
    return f"o{owner.pid}_{owner.start}_{owner.host}"


def owner_of(key: str) -> Owner | None:
    m = _KEY.fullmatch(key)
    return None if m is None else Owner(m.group(3), int(m.group(1)), m.group(2))


MARKER_PREFIX, MARKER_SUFFIX = "state-", ".owner"


def marker(tmp_dir: str, dialog: str) -> str:
    """The owner file of the dialog state ``<states>/<dialog>``."""
    return posixpath.join(tmp_dir, f"{MARKER_PREFIX}{dialog}{MARKER_SUFFIX}")


def listing_command(tmp_dir: str) -> str:
    """One call: the tmp dir's names, then ``<marker> <owner tag>`` per dialog state; and the
    untagged leftovers older than STALE_MIN removed on the way (as before owners existed)."""
    tmp = quote(tmp_dir)
    names = " -o ".join(f"-name {quote(f'{k}-*')}" for k in KINDS)
    return (
        f"if [ -d {tmp} ]; then ls {tmp}; "
        f"find {tmp} -maxdepth 1 \\( {names} \\) -mmin +{STALE_MIN} "
        "-delete 2>/dev/null; fi; "
        f"echo {_SPLIT}; "
        f'for f in {tmp}/{MARKER_PREFIX}*{MARKER_SUFFIX}; do [ -f "$f" ] && '
        'echo "$f $(cat "$f")"; done; '
        f"echo {_SPLIT_PS}; ps -A -o PID,ARGS 2>/dev/null; true"
    )


def dead_genies(listing: str) -> list[int]:
    """genie-t2t-run processes whose owner (named by their prompt file) is gone."""
    pids = []
    for line in listing.partition(_SPLIT_PS)[2].splitlines():
        pid, _, args = line.strip().partition(" ")
        m = _GENIE_PROMPT.search(args)
        owner = owner_of(m.group(1)) if m and pid.isdigit() else None
        if owner is not None and owner.gone():
            pids.append(int(pid))
    return pids


def dead(listing: str, tmp_dir: str, states_dir: str) -> list[str]:
    """The paths (files and state folders) whose owner is gone from this host."""
    files, _, markers = listing.partition(_SPLIT_PS)[0].partition(_SPLIT)
    doomed: list[str] = []
    for name in files.split():
        m = _TAGGED.fullmatch(name)
        owner = owner_of(m.group(2)) if m else None
        if owner is not None and owner.gone():
            doomed.append(posixpath.join(tmp_dir, name))
    prefix = posixpath.join(tmp_dir, MARKER_PREFIX)
    for line in markers.splitlines():
        path, _, tag = line.strip().partition(" ")
        owner = Owner.parse(tag)
        if not path.startswith(prefix) or not path.endswith(MARKER_SUFFIX) or owner is None:
            continue
        dialog = path[len(prefix) : -len(MARKER_SUFFIX)]
        if "/" in dialog or dialog in ("", ".", "..") or not owner.gone():
            continue
        doomed += [
            posixpath.join(states_dir, dialog),
            path,
            posixpath.join(tmp_dir, f"session-{dialog}.json"),  # its genie_config
        ]
    return doomed


def sweep(device, tmp_dir: str, states_dir: str) -> list[str]:  # noqa: ANN001 - Device
    """Remove what dead owners left; returns the paths removed (best effort: a file that
    cannot be removed now is tried again by the next run)."""
    listing = device.shell(listing_command(tmp_dir), timeout=30).text
    genies = dead_genies(listing)
    doomed = dead(listing, tmp_dir, states_dir)
    steps = []
    if genies:  # stopped first: a running Genie writes its profile when it ends
        steps.append("kill -9 " + " ".join(str(p) for p in genies) + " 2>/dev/null")
    if doomed:
        steps.append("rm -rf " + " ".join(quote(p) for p in doomed))
    if steps:
        device.shell("; ".join(steps) + "; true", timeout=60)
    return doomed
