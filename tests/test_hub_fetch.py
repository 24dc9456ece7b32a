"""AI Hub published-asset fetch against recorded store responses (tests/data/hub/).

Only the network is fake: the responses are served by ``RecordedFetcher`` behind our
``HttpFetcher`` seam; qai-hub-models-cli's protobufs, chipset resolution, asset filtering
and zip extraction run for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("qai_hub_models_cli", reason="pip install 'qwenchat[hub]'")

from qwenchat.errors import HubError  # noqa: E402
from qwenchat.hub.fetch import fetch_published_asset  # noqa: E402
from qwenchat.hub.transport import HttpResponse  # noqa: E402

DATA = Path(__file__).parent / "data" / "hub"
RESPONSES = json.loads((DATA / "responses.json").read_text())
ELITE_URL = next(u for u in RESPONSES if u.endswith("qualcomm_snapdragon_8_elite.zip"))
GEN3_URL = next(u for u in RESPONSES if u.endswith("qualcomm_snapdragon_8_gen_3.zip"))


class RecordedFetcher:
    """Serves tests/data/hub/ like S3 does: 403 for unknown keys, 206 for a Range."""

    def __init__(
        self,
        *,
        drop_after: int | None = None,
        status: dict[str, int] | None = None,
        headers: dict[str, dict[str, str]] | None = None,
        body: dict[str, bytes] | None = None,
        offline: bool = False,
        ignore_range: bool = False,
    ) -> None:
        self.drop_after = drop_after  # bytes sent before the link "drops" (once)
        self.status = status or {}
        self.extra_headers = headers or {}
        self.body = body or {}
        self.offline = offline
        self.ignore_range = ignore_range
        self.requests: list[tuple[str, str, int]] = []

    def _entry(self, url: str):
        if self.offline:
            raise ConnectionError("Network is unreachable")
        rec = RESPONSES.get(url)
        if url in self.status:
            return None, {"retry-after": "30"} if self.status[url] == 429 else {}, self.status[url]
        if rec is None:
            return None, {}, 403
        data = self.body.get(url, (DATA / rec["file"]).read_bytes())
        return data, {**rec["headers"], **self.extra_headers.get(url, {})}, 200

    def head(self, url, headers=None):
        self.requests.append(("HEAD", url, 0))
        _, h, status = self._entry(url)
        return HttpResponse(status, dict(h))

    def get(self, url, *, start=0, headers=None):
        self.requests.append(("GET", url, start))
        data, h, status = self._entry(url)
        if data is None:
            return HttpResponse(status, dict(h))
        h = dict(h)
        if start and not self.ignore_range:
            if start >= len(data):
                return HttpResponse(416, {"content-range": f"bytes */{len(data)}"})
            h["content-range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            status, data = 206, data[start:]
        h["content-length"] = str(len(data))
        drop = None
        if url.endswith(".zip"):  # only the asset download drops, once
            drop, self.drop_after = self.drop_after, None

        def chunks():
            sent = 0
            for i in range(0, len(data), 1000):
                piece = data[i : i + 1000]
                if drop is not None and sent + len(piece) > drop:
                    yield piece[: drop - sent]
                    raise ConnectionError("Connection reset by peer")
                sent += len(piece)
                yield piece

        return HttpResponse(status, h, chunks())


def _bins(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fetch_for_phone_soc_gives_bundle_of_bins(tmp_path):
    fetcher = RecordedFetcher()
    seen = []
    bundle = fetch_published_asset(
        "SM8750",
        cache_dir=tmp_path,
        fetcher=fetcher,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (
        bundle == tmp_path / "hub" / "qwen2_7b_instruct" / "qualcomm-snapdragon-8-elite" / "bundle"
    )
    # The zip's single top folder is unwrapped: the bundle holds just the context binaries.
    assert _bins(bundle) == [f"weight_sharing_model_{n}_of_4.serialized.bin" for n in range(1, 5)]
    assert seen[-1] == (int(RESPONSES[ELITE_URL]["headers"]["content-length"]),) * 2
    # No zip, no partial left beside the bundle: one copy of the bytes.
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["asset.json", "bundle"]


def test_second_run_is_cached_and_downloads_nothing(tmp_path):
    fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=RecordedFetcher())
    again = RecordedFetcher()
    bundle = fetch_published_asset("qualcomm-snapdragon-8-elite", cache_dir=tmp_path, fetcher=again)
    assert len(_bins(bundle)) == 4
    # Only the HEAD that confirms the store still serves the same file; the index is cached.
    assert again.requests == [("HEAD", ELITE_URL, 0)]


def test_interrupted_download_resumes_with_range(tmp_path):
    size = int(RESPONSES[ELITE_URL]["headers"]["content-length"])

    # Every attempt of the first run drops: the run fails but keeps what arrived.
    class AlwaysDrops(RecordedFetcher):
        def get(self, url, *, start=0, headers=None):
            if url == ELITE_URL:
                self.drop_after = 2500
            return super().get(url, start=start, headers=headers)

    with pytest.raises(HubError) as info:
        fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=AlwaysDrops())
    assert "resume" in info.value.hint
    partial = next((tmp_path / "hub").rglob("*.zip.partial"))
    kept = partial.stat().st_size
    assert 0 < kept < size
    second = RecordedFetcher()
    bundle = fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=second)
    gets = [r for r in second.requests if r[0] == "GET" and r[1] == ELITE_URL]
    assert gets == [("GET", ELITE_URL, kept)]  # continued, not restarted
    assert len(_bins(bundle)) == 4


def test_drop_mid_download_is_retried_within_one_run(tmp_path):
    fetcher = RecordedFetcher(drop_after=3000)
    bundle = fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=fetcher)
    starts = [r[2] for r in fetcher.requests if r[0] == "GET" and r[1] == ELITE_URL]
    assert starts == [0, 3000]
    assert len(_bins(bundle)) == 4


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    with pytest.raises(HubError):

        class Drops(RecordedFetcher):
            def get(self, url, *, start=0, headers=None):
                if url == ELITE_URL:
                    self.drop_after = 1200
                return super().get(url, start=start, headers=headers)

        fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=Drops())
    bundle = fetch_published_asset(
        "SM8750", cache_dir=tmp_path, fetcher=RecordedFetcher(ignore_range=True)
    )
    assert len(_bins(bundle)) == 4  # a 200 to a Range request rewrote the file from byte 0


def test_checksum_mismatch_removes_file(tmp_path):
    good = (DATA / RESPONSES[ELITE_URL]["file"]).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # same size, one flipped byte: only the SHA-256 can tell
    fetcher = RecordedFetcher(body={ELITE_URL: bytes(bad)})
    with pytest.raises(HubError, match="damaged .*SHA-256"):
        fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=fetcher)
    folder = tmp_path / "hub" / "qwen2_7b_instruct" / "qualcomm-snapdragon-8-elite"
    assert not list(folder.glob("*.partial*")) and not (folder / "bundle").exists()
    # The retry the hint asks for works.
    assert (
        len(_bins(fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=RecordedFetcher())))
        == 4
    )


def test_md5_etag_checked_when_no_sha256(tmp_path):
    good = (DATA / RESPONSES[ELITE_URL]["file"]).read_bytes()
    bad = bytearray(good)
    bad[100] ^= 1
    headers = {ELITE_URL: {"x-amz-checksum-sha256": ""}}
    fetcher = RecordedFetcher(body={ELITE_URL: bytes(bad)}, headers=headers)
    with pytest.raises(HubError, match="MD5"):
        fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=fetcher)


def test_multipart_etag_asset_checked_by_size_only(tmp_path):
    bundle = fetch_published_asset("SM8650", cache_dir=tmp_path, fetcher=RecordedFetcher())
    assert bundle.parent.name == "qualcomm-snapdragon-8-gen-3" and len(_bins(bundle)) == 4
    short = (DATA / RESPONSES[GEN3_URL]["file"]).read_bytes()[:-10]
    with pytest.raises(HubError, match="stopped at|size"):
        fetch_published_asset(
            "SM8650", cache_dir=tmp_path / "other", fetcher=RecordedFetcher(body={GEN3_URL: short})
        )


def test_chip_without_asset_lists_the_chips_that_have_one(tmp_path):
    with pytest.raises(HubError) as info:
        fetch_published_asset("SM8550", cache_dir=tmp_path, fetcher=RecordedFetcher())
    msg = info.value.message
    assert "Snapdragon® 8 Gen 2" in msg or "SM8550" in msg
    assert "8 Elite" in msg and "8 Gen 3" in msg
    assert "--hub-job" in info.value.hint


def test_unknown_chipset_name_is_one_clear_error(tmp_path):
    with pytest.raises(HubError, match="no chipset 'snapdragon 9 ultra'") as info:
        fetch_published_asset("snapdragon 9 ultra", cache_dir=tmp_path, fetcher=RecordedFetcher())
    assert "8 Elite" in info.value.hint
    with pytest.raises(HubError, match="unknown chipset|no chipset"):
        fetch_published_asset("SM0000", cache_dir=tmp_path, fetcher=RecordedFetcher())


def test_network_down_is_one_line(tmp_path):
    with pytest.raises(HubError, match="cannot reach") as info:
        fetch_published_asset("SM8750", cache_dir=tmp_path, fetcher=RecordedFetcher(offline=True))
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "status,pattern",
    [(429, "rate limit.*retry after 30 s"), (403, "has no"), (401, "401"), (503, "failed")],
)
def test_store_statuses_become_clear_errors(tmp_path, status, pattern):
    with pytest.raises(HubError, match=pattern):
        fetch_published_asset(
            "SM8750", cache_dir=tmp_path, fetcher=RecordedFetcher(status={ELITE_URL: status})
        )


def test_damaged_zip_is_removed(tmp_path):
    junk = b"PK\x03\x04 not really a zip" + b"\0" * 100
    headers = {
        ELITE_URL: {"content-length": str(len(junk)), "etag": '"x-1"', "x-amz-checksum-sha256": ""}
    }
    with pytest.raises(HubError, match="not a usable zip"):
        fetch_published_asset(
            "SM8750",
            cache_dir=tmp_path,
            fetcher=RecordedFetcher(body={ELITE_URL: junk}, headers=headers),
        )
    assert not list((tmp_path / "hub").rglob("*.partial"))
