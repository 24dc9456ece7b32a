"""A model's context binaries from AI Hub, as a bundle folder ``push-assets`` takes as it is.

Layout under ``qwenchat.paths.cache_dir()/hub/``::

    index/v0.65.0/{manifest,platform}.pb, models/<id>/release_assets.pb
    <model_id>/<chipset>/<runtime>-<precision>/<asset>.zip.partial  (+ .partial.json)
    <model_id>/<chipset>/<runtime>-<precision>/bundle/               (what push-assets takes)
    jobs/<job_id>/bundle/

A bundle holds the files as the zip has them (.bin parts under their own names; a Genie
bundle's configs and tokenizer too) plus ``manifest.json`` (``metadata.py``): model,
runtime, chipset, precision, source URL with size and hashes, and the tool versions
(QAIRT) the binaries were built with. It is assembled in a staging folder and renamed into
place, so a bundle folder is complete or absent.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.errors import HubError, UsageError
from qwenchat.hub.download import DownloadProgress, RemoteFile, download, forget
from qwenchat.hub.errors import check_status, network_error
from qwenchat.hub.index import PublishedAsset, ReleaseIndex
from qwenchat.hub.metadata import file_entries, read_metadata, write_metadata
from qwenchat.hub.transport import HttpFetcher, HubClient

if TYPE_CHECKING:
    from qwenchat.models.spec import ModelSpec


def hub_cache_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is None:
        from qwenchat.paths import cache_dir as default_cache

        cache_dir = default_cache()
    return Path(cache_dir) / "hub"


def _spec(model: ModelSpec | None) -> ModelSpec:
    if model is None:
        from qwenchat.models.registry import get_model

        return get_model()
    return model


def not_downloadable(model: ModelSpec) -> UsageError:
    return UsageError(
        f"{model.display_name}'s context binaries are not published for download "
        f"({model.hub.not_published}); export them with your own AI Hub account",
        f"Run `qai-hub-models export {model.hub.model_id}` (needs an AI Hub token), then "
        "`qwenchat fetch --hub-job JOB_ID` with the ID of its link or compile job.",
    )


def _model_record(model: ModelSpec) -> dict:
    return {"name": model.name, "display_name": model.display_name, "hub_id": model.hub.model_id}


# ------------------------------------------------------------------------ assembling bundles


def _extract_zip(zip_path: Path, staging: Path) -> None:
    """Unpack into ``staging`` on the same disk (5 GB do not fit every /tmp), refusing
    entries that escape it and unwrapping a single top folder, as AI Hub's zips have."""
    unzip = staging.with_name(staging.name + ".unzip")
    shutil.rmtree(unzip, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as z:
            root = unzip.resolve()
            for member in z.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise ValueError(f"unsafe entry {member!r}")
            # extractall checks each member's CRC-32 as it writes it.
            z.extractall(unzip)
        top = list(unzip.iterdir())
        if len(top) == 1 and top[0].is_dir():
            top[0].replace(staging)
            unzip.rmdir()
        else:
            unzip.replace(staging)
    except OSError as e:  # disk full, permissions: the zip itself is fine, keep it
        shutil.rmtree(unzip, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise HubError(
            f"cannot unpack {zip_path.name}: {e.strerror or e}", "Free disk space and run again."
        ) from None
    except (zipfile.BadZipFile, ValueError, EOFError) as e:  # damaged or hostile zip
        shutil.rmtree(unzip, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        zip_path.unlink(missing_ok=True)
        raise HubError(
            f"{zip_path.name} is not a usable zip ({type(e).__name__}); it was removed",
            "Run the command again to download it afresh.",
        ) from None


def _install_bundle(staging: Path, bundle: Path) -> None:
    """Swap ``staging`` in as ``bundle`` with renames: never a half-filled bundle folder."""
    if not any(staging.rglob("*.bin")):
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


# ------------------------------------------------------------------------ published assets


def find_published_asset(
    chip: str,
    *,
    model: ModelSpec | None = None,
    cache_dir: Path | None = None,
    fetcher: HttpFetcher | None = None,
    version: str | None = None,
) -> PublishedAsset:
    """Which release asset ``fetch`` would download for ``chip`` (no download)."""
    spec = _spec(model)
    if not spec.hub.downloadable:
        raise not_downloadable(spec)
    if fetcher is None:
        from qwenchat.hub.transport import RequestsFetcher

        fetcher = RequestsFetcher()
    index = ReleaseIndex.load(
        fetcher, hub_cache_root(cache_dir), spec.hub.model_id, version, spec.display_name
    )
    return index.asset_for(chip, spec.hub.runtimes, spec.hub.precision)


def fetch_published_asset(
    chip: str,
    *,
    model: ModelSpec | None = None,
    cache_dir: Path | None = None,
    fetcher: HttpFetcher | None = None,
    progress: DownloadProgress | None = None,
    version: str | None = None,
) -> Path:
    """The bundle folder of ``model``'s published context binaries for ``chip``.

    ``chip`` is a phone SoC id (``SM8750``) or an AI Hub chipset id/name/alias. The asset
    is looked for under each of the spec's runtimes in order: a Genie bundle is taken as it
    is, bare context binaries are completed into a bundle with their record.
    """
    spec = _spec(model)
    if spec.hub.source == "asset-store" and spec.hub.downloadable:
        return fetch_asset_store_file(
            chip, model=spec, cache_dir=cache_dir, fetcher=fetcher, progress=progress
        )
    if fetcher is None:
        from qwenchat.hub.transport import RequestsFetcher

        fetcher = RequestsFetcher()
    asset = find_published_asset(
        chip, model=spec, cache_dir=cache_dir, fetcher=fetcher, version=version
    )
    folder = hub_cache_root(cache_dir) / asset.model_id / asset.chipset / (
        f"{asset.runtime}-{asset.precision}"
    )
    record = {
        "model": _model_record(spec),
        "runtime": asset.runtime,
        "precision": asset.precision,
        "chipset": asset.chipset,
        "chipset_name": asset.chipset_label,
        "tool_versions": dict(asset.tool_versions),
    }
    source = {"kind": "AI Hub Models release asset", "release": asset.version}
    return _fetch_zip(
        fetcher, asset.url, f"{asset.filename} for {asset.chipset_label}", folder, progress,
        record, source,
    )


def _fetch_zip(
    fetcher: HttpFetcher,
    url: str,
    what: str,
    folder: Path,
    progress: DownloadProgress | None,
    record: dict,
    source: dict,
) -> Path:
    """``folder/bundle``: the zip at ``url`` unpacked, with its record; the store is asked
    whether the file changed (a cached bundle of the same file is returned as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    bundle = folder / "bundle"
    held = (read_metadata(bundle) or {}).get("source") or {}
    filename = url.rsplit("/", 1)[-1]
    try:
        # Ask S3 for the object's own checksum as well (returned only when asked).
        head = fetcher.head(url, {"x-amz-checksum-mode": "ENABLED"})
    except (ConnectionError, TimeoutError, OSError) as e:
        if held.get("url") == url:
            return bundle  # offline: we already hold the file the store names
        raise network_error(f"checking {filename}", e) from None
    check_status(head, what)
    remote = RemoteFile.from_head(url, head.headers)
    if (held.get("url"), held.get("etag"), held.get("size")) == (
        remote.url,
        remote.etag,
        remote.size,
    ):
        return bundle  # cached: the store still serves the same file

    partial = folder / (filename + ".partial")
    got = download(fetcher, remote, partial, progress)
    staging = folder / f"bundle.tmp-{os.getpid()}"
    try:
        _extract_zip(got.path, staging)
        write_metadata(
            staging,
            {
                **record,
                "source": {
                    **source,
                    "url": url,
                    "size": got.size,
                    "etag": remote.etag,
                    "sha256": got.sha256,
                    "md5": got.md5,
                },
                "files": file_entries(staging, got.path),
            },
        )
        _install_bundle(staging, bundle)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    forget(partial)  # the zip is as large as the bundle: keep one copy
    return bundle


def asset_store_url(model: ModelSpec) -> str:
    """Where qai-hub-models' CachedWebModelAsset.from_asset_store finds the model's file:
    ``{store_url}/{model_asset_folder}/{filename}`` with model_asset_folder
    ``models/{model_id}/v{version}`` (qai_hub_models/asset_bases.yaml)."""
    from qwenchat.hub.index import store_url

    store_file = model.hub.asset_store_file
    assert store_file is not None  # only models published in the asset store come here
    return posixpath.join(store_url(), "qai-hub-models", "models", model.hub.model_id, store_file)


def fetch_asset_store_file(
    chip: str,
    *,
    model: ModelSpec,
    cache_dir: Path | None = None,
    fetcher: HttpFetcher | None = None,
    progress: DownloadProgress | None = None,
) -> Path:
    """The bundle of a model its publishing qai-hub-models version keeps in the asset store
    (Baichuan2-7B: v0.47's model.py), for a chip it was compiled for."""
    from qwenchat.soc import soc_name

    socs = model.hub.published_socs
    if chip.strip().upper() not in socs:
        listed = ", ".join(f"{s} ({soc_name(s)})" for s in socs)
        raise HubError(
            f"{model.display_name} was published for {listed} only (qai-hub-models "
            f"v{model.hub.published_in} asset store), not for {chip}",
            f"Use a phone with that chip (--chipset {socs[0]} fetches it anyway).",
        )
    if fetcher is None:
        from qwenchat.hub.transport import RequestsFetcher

        fetcher = RequestsFetcher()
    url = asset_store_url(model)
    version_dir = (model.hub.asset_store_file or "").split("/", 1)[0]
    folder = hub_cache_root(cache_dir) / model.hub.model_id / "asset-store" / version_dir
    record = {
        "model": _model_record(model),
        "runtime": "qnn_context_binary",
        "precision": model.hub.precision,
        "chipset": socs[0],
        "chipset_name": soc_name(socs[0]),
        "tool_versions": {},
    }
    source = {"kind": "AI Hub Models asset store", "release": model.hub.published_in}
    return _fetch_zip(fetcher, url, f"{model.display_name}'s {url.rsplit('/', 2)[-2]}/"
                      f"{url.rsplit('/', 1)[-1]}", folder, progress, record, source)  # fmt: skip


# ------------------------------------------------------------------------ a user's own job

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def fetch_job_model(
    job_id: str,
    *,
    model: ModelSpec | None = None,
    cache_dir: Path | None = None,
    client: HubClient | None = None,
) -> Path:
    """The bundle folder holding the target model of a user's own AI Hub compile/link job."""
    if not _JOB_ID.match(job_id):
        raise HubError(
            f"not an AI Hub job ID: {job_id!r}",
            "Job IDs are letters and digits, as in the job's URL /jobs/<ID>.",
        )
    spec = _spec(model)
    bundle = hub_cache_root(cache_dir) / "jobs" / job_id / "bundle"
    held = read_metadata(bundle)
    if held is not None and (held.get("source") or {}).get("job_id") == job_id:
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
    folder = bundle.parent
    folder.mkdir(parents=True, exist_ok=True)
    download_dir = folder / f"download.tmp-{os.getpid()}"
    staging = folder / f"bundle.tmp-{os.getpid()}"
    shutil.rmtree(download_dir, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        got = client.download_target_model(job_id, download_dir)
        zip_path = None
        if got.is_file() and got.suffix == ".zip":
            _extract_zip(got, staging)
            zip_path = got
        elif got.is_dir():
            got.replace(staging)
        else:
            staging.mkdir()
            got.replace(staging / got.name)
        try:
            # Only a record: the binaries are usable without it, so a failure here is not one.
            tool_versions = client.target_model_tool_versions(job_id)
        except HubError:
            tool_versions = {}
        write_metadata(
            staging,
            {
                "model": _model_record(spec),
                "runtime": "qnn_context_binary",
                "source": {
                    "kind": f"AI Hub {job.kind} job",
                    "job_id": job_id,
                    "job_name": job.name,
                },
                "tool_versions": {k: v for k, v in tool_versions.items() if k == "qairt"},
                "target": {k: v for k, v in tool_versions.items() if k != "qairt"},
                "files": file_entries(staging, zip_path),
            },
        )
        _install_bundle(staging, bundle)
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return bundle
