"""AI Hub published-asset fetch against a recorded store on a real 127.0.0.1 HTTP server.

Only AI Hub's servers are stood in for: ``RecordedStore`` serves tests/data/hub/ over HTTP
the way S3 does (403 for unknown keys, 206 for a Range, 412 for a failed If-Match, the
SHA-256 header only when asked), and ``QWENCHAT_HUB_STORE`` points qwenchat's real
``requests`` fetcher at it. The library's protobuf parsing and asset filtering, the HTTP
stack, resume and the checks all run for real. Faults are the server's: a connection
closed mid-file, a Range ignored, bytes changed in transit.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("qai_hub_models_cli", reason="pip install 'qwenchat[hub]'")

from qwenchat.errors import HubError, UsageError  # noqa: E402
from qwenchat.hub import bundle_qairt_version, published_socs  # noqa: E402
from qwenchat.hub.fetch import fetch_published_asset, find_published_asset  # noqa: E402
from qwenchat.hub.transport import STORE_ENV  # noqa: E402
from qwenchat.models.registry import get_model  # noqa: E402

DATA = Path(__file__).parent / "data" / "hub"
RESPONSES = json.loads((DATA / "responses.json").read_text())
STORE = "https://qaihub-public-assets.s3.us-west-2.amazonaws.com"
MODELS = f"{STORE}/qai-hub-models/models/qwen2_7b_instruct/releases/v0.65.0"
ELITE_URL = f"{MODELS}/qwen2_7b_instruct-qnn_context_binary-w4a16-qualcomm_snapdragon_8_elite_for_galaxy.zip"
QCS_URL = f"{MODELS}/qwen2_7b_instruct-qnn_context_binary-w4a16-qualcomm_qcs8750.zip"
GEN3_GENIE_URL = f"{MODELS}/qwen2_7b_instruct-genie-w4a16-qualcomm_snapdragon_8gen3.zip"
GEN3_CTX_URL = f"{MODELS}/qwen2_7b_instruct-qnn_context_binary-w4a16-qualcomm_snapdragon_8gen3.zip"
# Hand-copied from build_recorded.py: what the index says the binaries were built with.
QAIRT_CTX = "2.37.1.250807093845_124904"
QAIRT_GENIE = "2.38.0.250901101412_127030"
BINS = [f"weight_sharing_model_{n}_of_4.serialized.bin" for n in range(1, 5)]
QWEN2 = get_model("qwen2-7b-instruct")

S3_403 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


def fixture_bytes(url: str) -> bytes:
    return (DATA / RESPONSES[url]["file"]).read_bytes()


def zip_members(url: str) -> dict[str, bytes]:
    """Each file of a recorded zip by its base name: the bytes a bundle must hold."""
    with zipfile.ZipFile(io.BytesIO(fixture_bytes(url))) as z:
        return {Path(n).name: z.read(n) for n in z.namelist() if not n.endswith("/")}


class RecordedStore:
    """AI Hub's public S3 store, recorded, on 127.0.0.1. Knobs are per-URL faults."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.drops: dict[str, list[int]] = {}  # url -> bytes to send before closing, per GET
        self.ignore_range = False
        self.status: dict[str, int] = {}
        self.body: dict[str, bytes] = {}  # the store holds these bytes instead (HEAD agrees)
        self.in_transit: dict[str, bytes] = {}  # GET delivers these: damaged on the way
        self.no_checksum: set[str] = set()  # never send x-amz-checksum-sha256 for these
        self.etag: dict[str, str] = {}  # another ETag than the recorded one
        self.etag_after_head: dict[str, str] = {}  # the object replaced once HEAD answered
        self.delay = 0.0  # seconds between 16 KiB pieces (a slow link, for the live bar)
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):  # noqa: N802
                store._answer(self, head=True)

            def do_GET(self):  # noqa: N802
                store._answer(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def gets(self, url: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "GET" and r["url"] == url]

    def _send(self, h, status: int, headers: dict[str, str], body: bytes, head: bool) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _answer(self, h, head: bool) -> None:  # noqa: ANN001
        url = STORE + h.path
        log = {
            "method": "HEAD" if head else "GET",
            "url": url,
            "range": h.headers.get("Range"),
            "if_match": h.headers.get("If-Match"),
            "checksum_mode": h.headers.get("x-amz-checksum-mode"),
            "status": None,
        }
        self.requests.append(log)
        rec = RESPONSES.get(url)
        if url in self.status:
            log["status"] = status = self.status[url]
            extra = {"Retry-After": "30"} if status == 429 else {}
            self._send(h, status, {"Content-Type": "application/xml", **extra}, S3_403, head)
            return
        if rec is None:
            log["status"] = 403
            self._send(h, 403, {"Content-Type": "application/xml"}, S3_403, head)
            return
        data = self.body.get(url, (DATA / rec["file"]).read_bytes())
        if not head:
            data = self.in_transit.get(url, data)
        headers = {k: v for k, v in rec["headers"].items() if k != "content-length"}
        if url in self.no_checksum or h.headers.get("x-amz-checksum-mode") != "ENABLED":
            headers = {k: v for k, v in headers.items() if not k.startswith("x-amz-checksum")}
        if url in self.etag:
            headers["etag"] = self.etag[url]
        if not head and url in self.etag_after_head:
            headers["etag"] = self.etag_after_head[url]
        wanted = h.headers.get("If-Match")
        if wanted and wanted.strip('"') != headers.get("etag", "").strip('"'):
            log["status"] = 412
            self._send(h, 412, {"Content-Type": "application/xml"}, b"<Error/>", head)
            return
        status = 200
        rng = h.headers.get("Range")
        if rng and not self.ignore_range and not head:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                log["status"] = 416
                self._send(h, 416, {"Content-Range": f"bytes */{len(data)}"}, b"", head)
                return
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            status, data = 206, data[start:]
        log["status"] = status
        drop = self.drops.get(url, [])
        cut = drop.pop(0) if drop and not head else None
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if head:
            return
        sent = data if cut is None else data[:cut]
        for i in range(0, len(sent), 16384):
            h.wfile.write(sent[i : i + 16384])
            if self.delay:
                h.wfile.flush()
                time.sleep(self.delay)
        if cut is not None:
            # The link drops mid-file: the client got fewer bytes than Content-Length.
            h.wfile.flush()
            h.close_connection = True
            log["dropped_after"] = cut


@pytest.fixture
def store(monkeypatch):
    s = RecordedStore()
    monkeypatch.setenv(STORE_ENV, s.base)
    yield s
    s.close()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _assert_bins_are_the_zips(bundle: Path, url: str) -> None:
    want = zip_members(url)
    for name in BINS:
        assert (bundle / name).read_bytes() == want[name], name


# ------------------------------------------------------------------ which asset, which chip


def test_phone_soc_gets_binaries_listed_under_qnn_context_binary(tmp_path, store):
    # The real index keys Qwen2's binaries qnn_context_binary: asking only for "genie" finds none.
    bundle = fetch_published_asset("SM8750", cache_dir=tmp_path)
    assert bundle == (
        tmp_path / "hub" / "qwen2_7b_instruct" / "qualcomm-snapdragon-8-elite-for-galaxy"
        / "qnn_context_binary-w4a16" / "bundle"
    )  # fmt: skip
    # The parts as the zip names them, unwrapped from its top folder, plus our record.
    assert _files(bundle) == ["manifest.json", *BINS]
    _assert_bins_are_the_zips(bundle, ELITE_URL)
    record = json.loads((bundle / "manifest.json").read_text())
    assert record["model"]["hub_id"] == "qwen2_7b_instruct"
    assert (record["runtime"], record["precision"], record["chipset"]) == (
        "qnn_context_binary",
        "w4a16",
        "qualcomm-snapdragon-8-elite-for-galaxy",
    )
    zipped = fixture_bytes(ELITE_URL)
    assert record["source"]["url"] == ELITE_URL
    assert record["source"]["size"] == len(zipped)
    assert record["source"]["sha256"] == hashlib.sha256(zipped).hexdigest()
    assert record["source"]["md5"] == hashlib.md5(zipped).hexdigest()
    assert record["tool_versions"]["qairt"] == QAIRT_CTX
    assert {n: e["size"] for n, e in record["files"].items()} == {n: 40 * 1024 for n in BINS}
    assert bundle_qairt_version(bundle) == QAIRT_CTX
    # No zip, no partial left beside the bundle: one copy of the bytes.
    assert _files(bundle.parent) == ["bundle"]
    # S3 sends the object's SHA-256 only when asked: we asked.
    heads = [r for r in store.requests if r["method"] == "HEAD"]
    assert heads and heads[0]["checksum_mode"] == "ENABLED"


def test_genie_bundle_is_preferred_when_both_forms_are_listed(tmp_path, store):
    bundle = fetch_published_asset("SM8650", cache_dir=tmp_path)
    assert bundle.parent.name == "genie-w4a16"
    assert _files(bundle) == sorted(
        [*BINS, "genie_config.json", "htp_backend_ext_config.json", "tokenizer.json", "manifest.json"]
    )
    assert json.loads((bundle / "genie_config.json").read_text())["dialog"]["context"]["size"] == 4096
    assert bundle_qairt_version(bundle) == QAIRT_GENIE
    assert store.gets(GEN3_CTX_URL) == []


def test_soc_maps_to_index_chipsets_through_platform_data(tmp_path, store):
    from qwenchat.hub.fetch import hub_cache_root
    from qwenchat.hub.index import ReleaseIndex
    from qwenchat.hub.transport import RequestsFetcher

    index = ReleaseIndex.load(RequestsFetcher(), hub_cache_root(tmp_path), "qwen2_7b_instruct")
    # The alias sm8750-ac names the for-Galaxy chip; QCS8750 shares its soc_model 69 / v79.
    assert index.candidate_chipsets("SM8750") == [
        "qualcomm-snapdragon-8-elite-for-galaxy",
        "qualcomm-qcs8750",
    ]
    assert index.candidate_chipsets("sm8650") == ["qualcomm-snapdragon-8gen3"]
    assert index.candidate_chipsets("SC8380") == ["qualcomm-snapdragon-x-elite"]
    assert index.candidate_chipsets("qualcomm-qcs8750") == [
        "qualcomm-qcs8750",
        "qualcomm-snapdragon-8-elite-for-galaxy",
    ]
    assert index.candidate_chipsets("SM0000") == []
    # A platform list without the phone's alias: qwenchat's SoC table gives soc_model 69.
    for chip in index.platform.chipsets:
        del chip.aliases[:]
    assert index.candidate_chipsets("SM8750") == [
        "qualcomm-snapdragon-8-elite-for-galaxy",
        "qualcomm-qcs8750",
    ]


def test_explicit_chipset_gets_that_chips_asset(tmp_path, store):
    asset = find_published_asset("qualcomm-qcs8750", cache_dir=tmp_path)
    assert (asset.chipset, asset.runtime, asset.url) == (
        "qualcomm-qcs8750",
        "qnn_context_binary",
        QCS_URL,
    )
    bundle = fetch_published_asset("Dragonwing Q-8750", cache_dir=tmp_path)
    _assert_bins_are_the_zips(bundle, QCS_URL)
    assert bundle_qairt_version(bundle) is None  # that upload lists no tool_versions


def test_chip_without_asset_lists_the_chips_that_have_one(tmp_path, store):
    # The 8 Gen 2 has a w8a16 asset only: not the w4a16 the spec asks for.
    with pytest.raises(HubError) as info:
        fetch_published_asset("SM8550", cache_dir=tmp_path)
    msg = info.value.message
    assert "SM8550 (Snapdragon® 8 Gen 2 Mobile)" in msg
    assert msg.endswith(
        "it has them for: "
        "Dragonwing™ Q-8750, Snapdragon® 8 Elite for Galaxy Mobile, Snapdragon® 8 Gen 3 Mobile"
    )
    assert "--hub-job" in info.value.hint
    assert all(r["url"].endswith(".pb") for r in store.requests)  # no asset was touched


def test_unknown_chipset_name_is_one_clear_error(tmp_path, store):
    with pytest.raises(HubError, match="no chipset 'snapdragon 9 ultra'") as info:
        fetch_published_asset("snapdragon 9 ultra", cache_dir=tmp_path)
    assert "8 Elite for Galaxy" in info.value.hint
    with pytest.raises(HubError, match="no chipset 'SM0000'"):
        fetch_published_asset("SM0000", cache_dir=tmp_path)


def test_model_that_may_not_be_downloaded_asks_nothing_of_the_store(tmp_path, store):
    llama = replace(
        QWEN2,
        name="llama-v2-7b-chat",
        display_name="Llama-v2-7B-Chat",
        hub=replace(QWEN2.hub, model_id="llama_v2_7b_chat", downloadable=False),
    )
    with pytest.raises(UsageError) as info:
        fetch_published_asset("SM8750", model=llama, cache_dir=tmp_path)
    assert info.value.exit_code == 2
    assert "not published for download" in info.value.message
    assert "--hub-job" in info.value.hint
    assert store.requests == []


def test_model_missing_from_the_index(tmp_path, store):
    other = replace(QWEN2, hub=replace(QWEN2.hub, model_id="qwen2_5_7b_instruct"))
    with pytest.raises(HubError, match="does not list"):
        fetch_published_asset("SM8750", model=other, cache_dir=tmp_path)


# ------------------------------------------------------------------ download: resume, checks


def test_drop_mid_file_resumes_with_range_within_one_run(tmp_path, store):
    size = len(fixture_bytes(ELITE_URL))
    store.drops[ELITE_URL] = [100_000]
    bundle = fetch_published_asset("SM8750", cache_dir=tmp_path)
    first, second = store.gets(ELITE_URL)
    assert first["range"] is None and first["dropped_after"] == 100_000
    # Continued where the bytes stopped, answered 206: not restarted.
    assert second["range"] is not None
    kept = int(second["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < kept <= 100_000 < size
    assert second["status"] == 206
    _assert_bins_are_the_zips(bundle, ELITE_URL)


def test_interrupted_run_keeps_the_bytes_and_the_next_run_resumes(tmp_path, store):
    size = len(fixture_bytes(ELITE_URL))
    store.drops[ELITE_URL] = [20_000, 20_000, 20_000]  # every try of the first run drops
    with pytest.raises(HubError) as info:
        fetch_published_asset("SM8750", cache_dir=tmp_path)
    assert "resume" in info.value.hint
    partial = next((tmp_path / "hub").rglob("*.zip.partial"))
    kept = partial.stat().st_size
    assert 0 < kept < size
    before = len(store.gets(ELITE_URL))
    bundle = fetch_published_asset("SM8750", cache_dir=tmp_path)
    (resumed,) = store.gets(ELITE_URL)[before:]
    assert (resumed["range"], resumed["status"]) == (f"bytes={kept}-", 206)
    _assert_bins_are_the_zips(bundle, ELITE_URL)


def test_server_ignoring_range_rewrites_the_file_from_byte_zero(tmp_path, store):
    store.drops[ELITE_URL] = [20_000, 20_000, 20_000]
    with pytest.raises(HubError):
        fetch_published_asset("SM8750", cache_dir=tmp_path)
    store.ignore_range = True
    bundle = fetch_published_asset("SM8750", cache_dir=tmp_path)
    last = store.gets(ELITE_URL)[-1]
    assert last["range"] is not None and last["status"] == 200  # asked to resume, got all
    _assert_bins_are_the_zips(bundle, ELITE_URL)  # not the kept bytes + the whole file again
    record = json.loads((bundle / "manifest.json").read_text())
    assert record["source"]["sha256"] == hashlib.sha256(fixture_bytes(ELITE_URL)).hexdigest()


def test_bytes_changed_in_transit_fail_the_sha256(tmp_path, store):
    bad = bytearray(fixture_bytes(ELITE_URL))
    bad[len(bad) // 2] ^= 0xFF  # same size, one flipped byte: only a hash can tell
    store.in_transit[ELITE_URL] = bytes(bad)
    with pytest.raises(HubError, match="damaged .*SHA-256"):
        fetch_published_asset("SM8750", cache_dir=tmp_path)
    folder = tmp_path / "hub" / "qwen2_7b_instruct" / "qualcomm-snapdragon-8-elite-for-galaxy"
    assert not list(folder.rglob("*.partial*")) and not list(folder.rglob("bundle"))
    del store.in_transit[ELITE_URL]  # the retry the hint asks for works
    _assert_bins_are_the_zips(fetch_published_asset("SM8750", cache_dir=tmp_path), ELITE_URL)


def test_md5_etag_checked_when_the_store_gives_no_sha256(tmp_path, store):
    bad = bytearray(fixture_bytes(ELITE_URL))
    bad[100] ^= 1
    store.in_transit[ELITE_URL] = bytes(bad)
    store.no_checksum.add(ELITE_URL)
    with pytest.raises(HubError, match="MD5"):
        fetch_published_asset("SM8750", cache_dir=tmp_path)


def test_multipart_upload_is_checked_by_size(tmp_path, store):
    store.in_transit[QCS_URL] = fixture_bytes(QCS_URL)[:-10]
    with pytest.raises(HubError, match="damaged .*size"):
        fetch_published_asset("qualcomm-qcs8750", cache_dir=tmp_path)
    assert not list((tmp_path / "hub").rglob("bundle"))


def test_file_replaced_on_the_store_mid_download_is_not_joined(tmp_path, store):
    store.etag_after_head[ELITE_URL] = '"0123456789abcdef0123456789abcdef"'
    with pytest.raises(HubError, match="changed on AI Hub's store"):
        fetch_published_asset("SM8750", cache_dir=tmp_path)
    assert store.gets(ELITE_URL)[0]["status"] == 412
    assert not list((tmp_path / "hub").rglob("*.partial"))


def test_second_run_is_cached_and_downloads_nothing(tmp_path, store):
    fetch_published_asset("SM8750", cache_dir=tmp_path)
    before = len(store.requests)
    bundle = fetch_published_asset("qualcomm-snapdragon-8-elite-for-galaxy", cache_dir=tmp_path)
    _assert_bins_are_the_zips(bundle, ELITE_URL)
    # Only the HEAD that confirms the store still serves the same file; the index is cached.
    assert [(r["method"], r["url"]) for r in store.requests[before:]] == [("HEAD", ELITE_URL)]


def test_offline_second_run_uses_the_bundle_it_holds(tmp_path, store):
    first = fetch_published_asset("SM8750", cache_dir=tmp_path)
    store.close()  # the network is gone; the index and the bundle are cached
    assert fetch_published_asset("SM8750", cache_dir=tmp_path) == first
    with pytest.raises(HubError, match="cannot reach"):  # nothing held for this chip
        fetch_published_asset("SM8650", cache_dir=tmp_path)


def test_damaged_zip_is_removed(tmp_path, store):
    # A multipart upload (no hash to check) whose bytes are not a zip.
    store.body[ELITE_URL] = b"PK\x03\x04 not really a zip" + b"\0" * 100
    store.etag[ELITE_URL] = '"0123456789abcdef0123456789abcdef-3"'
    store.no_checksum.add(ELITE_URL)
    with pytest.raises(HubError, match="not a usable zip"):
        fetch_published_asset("SM8750", cache_dir=tmp_path)
    assert not list((tmp_path / "hub").rglob("*.partial")) and not list(
        (tmp_path / "hub").rglob("bundle*")
    )


@pytest.mark.parametrize(
    "status,pattern",
    [(429, "rate limit.*retry after 30 s"), (403, "has no"), (401, "401"), (503, "failed")],
)
def test_store_statuses_become_clear_errors(tmp_path, store, status, pattern):
    store.status[ELITE_URL] = status
    with pytest.raises(HubError, match=pattern) as info:
        fetch_published_asset("SM8750", cache_dir=tmp_path)
    assert "\n" not in info.value.message


def test_network_down_is_one_line(tmp_path, monkeypatch):
    import socket

    # A port bound but not listening refuses connections while the test holds it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv(STORE_ENV, f"http://127.0.0.1:{s.getsockname()[1]}")
        with pytest.raises(HubError, match="cannot reach") as info:
            fetch_published_asset("SM8750", cache_dir=tmp_path)
    assert "\n" not in info.value.message


def test_store_env_that_is_not_a_url_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENV, "127.0.0.1:8000")
    with pytest.raises(UsageError, match="not an http"):
        fetch_published_asset("SM8750", cache_dir=tmp_path)


# ------------------------------------------------------------------ published chips


def test_published_socs_from_the_index_then_from_the_table(tmp_path, store):
    # Offline with nothing cached: the spec's table answers, and says so.
    offline = published_socs(QWEN2, online=False, cache_dir=tmp_path)
    assert (offline.socs, offline.source) == (("SM8750",), "qwenchat's table")
    assert store.requests == []
    online = published_socs(QWEN2, online=True, cache_dir=tmp_path)
    # w4a16 under genie or qnn_context_binary: 8 Elite for Galaxy and QCS8750 (both SM8750
    # silicon) and 8 Gen 3; the 8 Gen 2's asset is w8a16.
    assert online.socs == ("SM8650", "SM8750")
    assert online.source == "AI Hub Models index v0.65.0"
    assert online.covers("sm8650") and not online.covers("SM8550")
    assert set(online.chipsets) == {
        "Snapdragon® 8 Elite for Galaxy Mobile",
        "Dragonwing™ Q-8750",
        "Snapdragon® 8 Gen 3 Mobile",
    }
    # Offline again: the index read before is still the answer (a release never changes).
    store.close()
    again = published_socs(QWEN2, online=False, cache_dir=tmp_path)
    assert (again.socs, again.source) == (("SM8650", "SM8750"), "AI Hub Models index v0.65.0")


def test_published_socs_unreachable_index_falls_back_with_the_reason(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv(STORE_ENV, f"http://127.0.0.1:{s.getsockname()[1]}")
        answer = published_socs(QWEN2, online=True, cache_dir=tmp_path)
    assert (answer.socs, answer.source) == (("SM8750",), "qwenchat's table")
    assert "cannot reach" in answer.note


def test_published_socs_of_models_without_published_binaries(tmp_path, store):
    missing = replace(QWEN2, hub=replace(QWEN2.hub, model_id="qwen2_5_7b_instruct"))
    answer = published_socs(missing, online=True, cache_dir=tmp_path)
    assert (answer.socs, answer.source) == ((), "AI Hub Models index v0.65.0")
    assert "does not list" in answer.note
    restricted = replace(QWEN2, hub=replace(QWEN2.hub, downloadable=False))
    assert published_socs(restricted, online=True, cache_dir=tmp_path).socs == ()
