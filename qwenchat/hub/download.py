"""One file from AI Hub's store to disk: resumable, and checked before anyone uses it.

The bytes land in ``NAME.partial`` beside a ``NAME.partial.json`` saying which version of
which file they belong to (URL, ETag, size). An interrupted download continues with
``Range: bytes=N-``; a server that ignores the Range (answers 200) gets the file rewritten
from byte 0, never appended. The finished file is checked against the size, the SHA-256
the store publishes for the object and the MD5 its ETag is (single-part upload) before it
is used; a damaged file is removed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from qwenchat.errors import HubError
from qwenchat.hub.errors import check_status, network_error
from qwenchat.hub.transport import HttpFetcher

ATTEMPTS = 3


class DownloadProgress(Protocol):
    def begin(self, name: str, total: int | None, done: int) -> None:
        """A download of ``total`` bytes starts, ``done`` of them already on disk."""

    def update(self, done: int) -> None:
        """``done`` bytes are on disk (may go back to 0 when a server restarts the file)."""

    def end(self, ok: bool) -> None:
        """The download finished (``ok``) or stopped."""


@dataclass(frozen=True)
class RemoteFile:
    """What the store says of the file before we fetch it: the checks we can make."""

    url: str
    size: int | None
    etag: str
    sha256: str | None  # hex, from x-amz-checksum-sha256 when the object has a full-object one
    md5: str | None  # hex, the ETag of a single-part S3 upload is the MD5 of the bytes

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @classmethod
    def from_head(cls, url: str, headers: dict[str, str]) -> RemoteFile:
        size = headers.get("content-length")
        etag = (headers.get("etag") or "").strip().strip('"')
        sha = headers.get("x-amz-checksum-sha256") or ""
        sha_hex = None
        if sha and "-" not in sha:  # "xxx-N" is a composite of parts, not the file's hash
            try:
                sha_hex = base64.b64decode(sha, validate=True).hex()
            except ValueError:
                sha_hex = None
            if sha_hex is not None and len(sha_hex) != 64:
                sha_hex = None
        md5 = etag.lower() if re.fullmatch(r"[0-9a-fA-F]{32}", etag) else None
        return cls(url, int(size) if size and size.isdigit() else None, etag, sha_hex, md5)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    md5: str


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sidecar(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _fill(
    fetcher: HttpFetcher, remote: RemoteFile, partial: Path, progress: DownloadProgress | None
) -> None:
    """Bring ``partial`` to the full file, continuing what an earlier run left."""
    want = {"url": remote.url, "etag": remote.etag, "size": remote.size}
    if read_json(_sidecar(partial)) != want:
        # A partial of another version of the file (or of unknown origin) cannot be continued.
        partial.unlink(missing_ok=True)
        write_json_atomic(_sidecar(partial), want)
    held = partial.stat().st_size if partial.exists() else 0
    if progress is not None:
        progress.begin(remote.name, remote.size, held)
    for attempt in range(ATTEMPTS):
        start = partial.stat().st_size if partial.exists() else 0
        if remote.size is not None and start == remote.size:
            return
        if remote.size is not None and start > remote.size:
            partial.unlink()
            start = 0
        try:
            # If-Match: a file replaced on the store since we started answers 412, so the
            # two halves of different files are never joined.
            match = {"If-Match": f'"{remote.etag}"'} if remote.etag else None
            response = fetcher.get(remote.url, start=start, headers=match)
            if response.status == 416:  # nothing past `start`: what we hold is all there is
                return
            if response.status == 412:  # the file was replaced since we asked for its size
                forget(partial)
                raise HubError(
                    f"{remote.name} changed on AI Hub's store during the download; "
                    "what had arrived was removed",
                    "Run the command again to download the new file.",
                )
            check_status(response, remote.name)
            if start and response.status == 206:
                m = re.match(r"bytes (\d+)-", response.header("content-range") or "")
                if not m or int(m.group(1)) != start:
                    raise HubError(
                        f"the store answered a resume of {remote.name} at byte {start} with "
                        f"another range ({response.header('content-range')})",
                        "Run the command again.",
                    )
            elif response.status == 200:
                start = 0  # the server ignored the Range: it sends the whole file again
            done = start
            with open(partial, "r+b" if start else "wb") as f:
                f.seek(start)
                f.truncate()
                for chunk in response.chunks:
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress.update(done)
            if remote.size is None:
                return
        except (ConnectionError, TimeoutError) as e:
            if attempt == ATTEMPTS - 1:
                got = partial.stat().st_size if partial.exists() else 0
                err = network_error(f"downloading {remote.name}", e)
                err.hint = f"{got} bytes are kept; run the command again to resume."
                raise err from None
    got = partial.stat().st_size if partial.exists() else 0
    raise HubError(
        f"download of {remote.name} stopped at {got} of {remote.size} bytes after {ATTEMPTS} tries",
        "Run the command again to resume.",
    )


def _check(remote: RemoteFile, partial: Path) -> Downloaded:
    size = partial.stat().st_size
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(partial, "rb") as f:
        while block := f.read(4 * 1024 * 1024):
            sha.update(block)
            md5.update(block)
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"size {size} bytes, the store says {remote.size}"
    elif remote.sha256 and sha.hexdigest() != remote.sha256:
        problem = "SHA-256 differs from the published one"
    elif remote.md5 and md5.hexdigest() != remote.md5:
        problem = "MD5 differs from the store's ETag"
    if problem:
        partial.unlink(missing_ok=True)
        _sidecar(partial).unlink(missing_ok=True)
        raise HubError(
            f"the downloaded {remote.name} is damaged ({problem}); it was removed",
            "Run the command again to download it afresh.",
        )
    return Downloaded(partial, size, sha.hexdigest(), md5.hexdigest())


def download(
    fetcher: HttpFetcher,
    remote: RemoteFile,
    partial: Path,
    progress: DownloadProgress | None = None,
) -> Downloaded:
    """``partial`` holding the whole, checked file (with its hashes)."""
    ok = False
    try:
        _fill(fetcher, remote, partial, progress)
        ok = True
    finally:
        if progress is not None:
            progress.end(ok)
    return _check(remote, partial)


def forget(partial: Path) -> None:
    """Remove a used partial and its sidecar: the zip is as large as the bundle."""
    partial.unlink(missing_ok=True)
    _sidecar(partial).unlink(missing_ok=True)
