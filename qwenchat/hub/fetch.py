"""Download, check and unpack AI Hub context binaries into a bundle folder.

Layout under ``qwenchat.paths.cache_dir()/hub/``::

    index/v0.65.0/{manifest,platform}.pb, models/<id>/release_assets.pb
    qwen2_7b_instruct/<chipset>/<asset>.zip.partial   (+ .partial.json: what it is part of)
    qwen2_7b_instruct/<chipset>/bundle/*.bin           (what push-assets takes)
    qwen2_7b_instruct/<chipset>/asset.json             (url, size, etag of the bundle)
    jobs/<job_id>/bundle/*.bin

A download lands in ``.partial`` and continues with an HTTP Range after an interruption;
the bundle folder is swapped in with a rename, so it is complete or absent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from qwenchat.errors import HubError
from qwenchat.hub import MODEL_ID
from qwenchat.hub.errors import check_status, network_error
from qwenchat.hub.index import PublishedAsset, ReleaseIndex
from qwenchat.hub.transport import HttpFetcher, HubClient, _require

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)
ATTEMPTS = 3


def hub_cache_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is None:
        from qwenchat.paths import cache_dir as default_cache

        cache_dir = default_cache()
    return Path(cache_dir) / "hub"


@dataclass(frozen=True)
class RemoteFile:
    """What the store says of the file before we fetch it: the checks we can make."""

    url: str
    size: int | None
    etag: str
    sha256: str | None  # hex, from x-amz-checksum-sha256 when the object has a full-object one
    md5: str | None  # hex, the ETag of a single-part S3 upload is the MD5 of the bytes

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


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _download(
    fetcher: HttpFetcher, remote: RemoteFile, partial: Path, progress: Progress | None
) -> None:
    """Bring ``partial`` to the full file, continuing what an earlier run left."""
    meta = partial.with_name(partial.name + ".json")
    want = {"url": remote.url, "etag": remote.etag, "size": remote.size}
    if _read_json(meta) != want:
        # A partial of another version of the file (or of unknown origin) cannot be continued.
        partial.unlink(missing_ok=True)
        _write_json_atomic(meta, want)
    what = remote.url.rsplit("/", 1)[-1]
    for attempt in range(ATTEMPTS):
        start = partial.stat().st_size if partial.exists() else 0
        if remote.size is not None and start == remote.size:
            return
        if remote.size is not None and start > remote.size:
            partial.unlink()
            start = 0
        try:
            response = fetcher.get(
                remote.url, start=start, headers={"If-Match": remote.etag} if remote.etag else None
            )
            if response.status == 416:  # nothing past `start`: what we hold is all there is
                return
            if response.status == 412:  # the file changed under us: start over
                partial.unlink(missing_ok=True)
                continue
            check_status(response, what)
            if start and response.status == 206:
                m = re.match(r"bytes (\d+)-", response.header("content-range") or "")
                if not m or int(m.group(1)) != start:
                    start = 0
            elif response.status == 200:
                start = 0  # the server ignored the Range: take the whole body
            done = start
            with open(partial, "ab" if start else "wb") as f:
                for chunk in response.chunks:
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, remote.size)
            if remote.size is None:
                return
        except (ConnectionError, TimeoutError) as e:
            if attempt == ATTEMPTS - 1:
                got = partial.stat().st_size if partial.exists() else 0
                err = network_error(f"downloading {what}", e)
                err.hint = f"{got} bytes are kept; run the command again to resume."
                raise err from None
    got = partial.stat().st_size if partial.exists() else 0
    raise HubError(
        f"download of {what} stopped at {got} of {remote.size} bytes after {ATTEMPTS} tries",
        "Run the command again to resume.",
    )


def _verify(remote: RemoteFile, partial: Path) -> None:
    meta = partial.with_name(partial.name + ".json")
    size = partial.stat().st_size
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"size {size} bytes, the store says {remote.size}"
    elif remote.sha256 or remote.md5:
        sha, md5 = hashlib.sha256(), hashlib.md5()
        with open(partial, "rb") as f:
            while block := f.read(4 * 1024 * 1024):
                sha.update(block)
                md5.update(block)
        if remote.sha256 and sha.hexdigest() != remote.sha256:
            problem = "SHA-256 differs from the published one"
        elif remote.md5 and md5.hexdigest() != remote.md5:
            problem = "MD5 differs from the store's ETag"
    if problem:
        partial.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise HubError(
            f"the downloaded {remote.url.rsplit('/', 1)[-1]} is damaged ({problem}); it was removed",
            "Run the command again to download it afresh.",
        )


def _install_bundle(staging: Path, bundle: Path) -> None:
    """Swap ``staging`` in as ``bundle`` with renames: never a half-filled bundle folder."""
    bins = sorted(p.name for p in staging.rglob("*.bin"))
    if not bins:
        shutil.rmtree(staging, ignore_errors=True)
        raise HubError(
            "the AI Hub download holds no .bin context binaries",
            "Check that the job/asset is a QNN context binary or Genie export.",
        )
    old = bundle.with_name(f"{bundle.name}.old-{os.getpid()}")
    if bundle.exists():
        bundle.replace(old)
    staging.replace(bundle)
    shutil.rmtree(old, ignore_errors=True)


def _extract_zip(zip_path: Path, staging: Path) -> None:
    utils = _require("qai_hub_models_cli.utils")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        # The library's extractor: refuses entries that escape the folder, unwraps one top folder.
        utils.extract_zip_file(zip_path, staging)
    except OSError as e:  # disk full, permissions: the zip itself is fine, keep it
        shutil.rmtree(staging, ignore_errors=True)
        raise HubError(
            f"cannot unpack {zip_path.name}: {e.strerror or e}", "Free disk space and run again."
        ) from None
    except Exception as e:  # zipfile.BadZipFile, the library's ValueError for unsafe entries
        shutil.rmtree(staging, ignore_errors=True)
        zip_path.unlink(missing_ok=True)
        raise HubError(
            f"{zip_path.name} is not a usable zip ({type(e).__name__}); it was removed",
            "Run the command again to download it afresh.",
        ) from None


def fetch_published_asset(
    chipset: str,
    *,
    cache_dir: Path | None = None,
    fetcher: HttpFetcher | None = None,
    progress: Progress | None = None,
    version: str | None = None,
) -> Path:
    """The bundle folder of Qwen2-7B-Instruct w4a16 context binaries for ``chipset``.

    ``chipset`` is a phone SoC id (``SM8750``) or an AI Hub chipset id/name/alias.
    """
    if fetcher is None:
        from qwenchat.hub.transport import RequestsFetcher

        fetcher = RequestsFetcher()
    root = hub_cache_root(cache_dir)
    index = ReleaseIndex.load(fetcher, root, version)
    asset: PublishedAsset = index.asset_for(chipset)
    folder = root / MODEL_ID / asset.chipset
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # Ask S3 for the object's own checksum as well (returned only when asked).
        head = fetcher.head(asset.url, {"x-amz-checksum-mode": "ENABLED"})
    except (ConnectionError, TimeoutError, OSError) as e:
        raise network_error(f"checking {asset.filename}", e) from None
    check_status(head, f"{asset.filename} for {asset.chipset_label}")
    remote = RemoteFile.from_head(asset.url, head.headers)

    bundle, stamp = folder / "bundle", folder / "asset.json"
    record = {"asset": asdict(asset), "size": remote.size, "etag": remote.etag}
    if bundle.is_dir() and _read_json(stamp) == record:
        return bundle  # cached: the store still serves the same file

    partial = folder / (asset.filename + ".partial")
    _download(fetcher, remote, partial, progress)
    _verify(remote, partial)
    stamp.unlink(missing_ok=True)
    staging = folder / f"bundle.tmp-{os.getpid()}"
    _extract_zip(partial, staging)
    _install_bundle(staging, bundle)
    _write_json_atomic(stamp, record)
    partial.unlink(missing_ok=True)  # the zip is as large as the bundle: keep one copy
    partial.with_name(partial.name + ".json").unlink(missing_ok=True)
    return bundle


_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def fetch_job_model(
    job_id: str,
    *,
    cache_dir: Path | None = None,
    client: HubClient | None = None,
) -> Path:
    """The bundle folder holding the target model of a user's own AI Hub compile/link job."""
    if not _JOB_ID.match(job_id):
        raise HubError(
            f"not an AI Hub job ID: {job_id!r}",
            "Job IDs are letters and digits, as in the job's URL /jobs/<ID>.",
        )
    folder = hub_cache_root(cache_dir) / "jobs" / job_id
    bundle, stamp = folder / "bundle", folder / "job.json"
    if bundle.is_dir() and _read_json(stamp) is not None:
        return bundle  # a finished job's output never changes
    if client is None:
        from qwenchat.hub.qaihub import QaiHubClient

        client = QaiHubClient()
    job = client.get_job(job_id)
    if job.state == "FAILED":
        raise HubError(
            f"AI Hub job {job_id} failed: {job.failure_reason or 'no reason given'}",
            "Fix the job on AI Hub and pass the ID of a successful one.",
        )
    if not job.finished:
        raise HubError(
            f"AI Hub job {job_id} is not finished yet ({job.state})",
            "Wait for it to finish (see its page on workbench.aihub.qualcomm.com).",
        )
    folder.mkdir(parents=True, exist_ok=True)
    download = folder / f"download.tmp-{os.getpid()}"
    staging = folder / f"bundle.tmp-{os.getpid()}"
    shutil.rmtree(download, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        got = client.download_target_model(job_id, download)
        if got.is_file() and got.suffix == ".zip":
            _extract_zip(got, staging)
        elif got.is_dir():
            got.replace(staging)
        else:
            staging.mkdir()
            got.replace(staging / got.name)
        _install_bundle(staging, bundle)
    finally:
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    _write_json_atomic(stamp, asdict(job))
    return bundle
