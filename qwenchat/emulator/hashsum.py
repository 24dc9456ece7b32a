"""The phone's md5sum/sha*sum: toybox's output at the speed of Android's toybox.

Android builds toybox with BoringSSL, so a phone hashes at hundreds of MB/s to GB/s;
Debian's toybox hashes in software at about a tenth of that, which would make the emulated
phone, not the cable, the slow part of every ``push-assets`` verification. This program runs
on the phone (its lent Python, OpenSSL through hashlib) for the plain case, files or stdin
with or without ``-b``, printing exactly what toybox prints ("HASH  NAME", "-" for stdin,
"NAME: strerror" on stderr and exit 1 for a file it cannot read). Anything else (``-c``,
``-s``, help, unknown options, a directory or a device) goes to the real toybox, unchanged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys

ALGORITHMS = {
    "md5sum": "md5",
    "sha1sum": "sha1",
    "sha224sum": "sha224",
    "sha256sum": "sha256",
    "sha384sum": "sha384",
    "sha512sum": "sha512",
}
TOYBOX = "/system/bin/toybox"
CHUNK = 1 << 20


def _toybox(name: str, args: list[str]) -> None:
    os.execv(TOYBOX, [name, *args])


def _plain(path: str) -> bool:
    """A file this program hashes itself: regular, or missing (toybox's error message)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def main(argv: list[str]) -> int:
    name = os.path.basename(argv[0])
    algorithm = ALGORITHMS.get(name)
    args = argv[1:]
    brief = False
    if args and args[0] == "-b":
        brief, args = True, args[1:]
    if algorithm is None or any(a.startswith("-") and a != "-" for a in args):
        _toybox(name, argv[1:])
    if not all(_plain(a) for a in args if a != "-"):
        _toybox(name, argv[1:])
    status = 0
    out = sys.stdout
    for path in args or ["-"]:
        digest = hashlib.new(algorithm)
        try:
            if path == "-":
                stream = sys.stdin.buffer
                for block in iter(lambda s=stream: s.read(CHUNK), b""):
                    digest.update(block)
            else:
                with open(path, "rb", buffering=0) as f:
                    digest = hashlib.file_digest(f, algorithm)
        except OSError as exc:
            out.flush()
            sys.stderr.write(f"{name}: {path}: {exc.strerror}\n")
            sys.stderr.flush()
            status = 1
            continue
        out.write(digest.hexdigest() + ("\n" if brief else f"  {path}\n"))
    out.flush()
    return status
