"""`fetch --model M` gets each model from where the qai-hub-models version that published it
put it, or says in one line why it cannot.

- Baichuan2-7B: qai-hub-models v0.47's model.py fetches
  ``CachedWebModelAsset.from_asset_store("baichuan2_7b", 2, "snapdragon_8_elite/models.zip")``,
  i.e. ``{store_url}/models/baichuan2_7b/v2/snapdragon_8_elite/models.zip``
  (asset_bases.yaml: store_url .../qai-hub-models, model_asset_folder models/{id}/v{version});
  no release index lists it. Tested against a loopback store laid out like it (a real
  127.0.0.1 HTTP server, qwenchat's real requests fetcher pointed at it).
- Qwen2.5-7B-Instruct: no release publishes its binaries (qai-hub-models exports it): one
  line, exit 2, before any network request.
- Llama-v2-7B-Chat: restricted (tested in test_hub_cli.py).

Failure modes: the release index is asked for a model it never listed; the asset-store URL
is not the one qai-hub-models uses; the parts are not the zip's bytes; a chip the file was
not compiled for gets it silently; a model with nothing published hits the network.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

pytest.importorskip("qai_hub_models_cli", reason="pip install 'qwenchat[hub]'")

from qwenchat.cli import app  # noqa: E402
from qwenchat.cli.errors import run_app  # noqa: E402
from qwenchat.hub.transport import STORE_ENV  # noqa: E402

PATH = "/qai-hub-models/models/baichuan2_7b/v2/snapdragon_8_elite/models.zip"
URL = "https://qaihub-public-assets.s3.us-west-2.amazonaws.com" + PATH
PARTS = [f"weight_sharing_model_{i}_of_5.serialized.bin" for i in range(1, 6)]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, name in enumerate(PARTS, start=1):
            z.writestr(name, bytes([i]) * (1000 + i))
    return buf.getvalue()


class AssetStore:
    """S3 as the asset store answers: the one object, 403 for any other key."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects, self.requests = objects, []
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                store.answer(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                store.answer(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, h, head: bool) -> None:  # noqa: ANN001
        self.requests.append((h.command, h.path))
        body = self.objects.get(h.path)
        if body is None:
            h.send_response(403)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(monkeypatch):
    s = AssetStore({PATH: _zip()})
    monkeypatch.setenv(STORE_ENV, s.base)
    yield s
    s.close()


def test_baichuan2_comes_from_the_v047_asset_store(store, tmp_path):
    import json

    from qwenchat.hub.fetch import fetch_published_asset
    from qwenchat.models.registry import get_model

    bundle = fetch_published_asset("SM8750", model=get_model("baichuan2-7b"), cache_dir=tmp_path)
    with zipfile.ZipFile(io.BytesIO(_zip())) as z:
        for name in PARTS:
            assert (bundle / name).read_bytes() == z.read(name)
    # Only the asset store's file was asked for: no release index for a model none lists.
    assert store.requests == [("HEAD", PATH), ("GET", PATH)]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["name"] == "baichuan2-7b"
    assert manifest["source"]["url"] == URL
    assert manifest["source"]["kind"] == "AI Hub Models asset store"
    assert manifest["source"]["release"] == "0.47.0"
    # A second fetch finds the same file on the store: nothing downloaded again.
    assert fetch_published_asset("SM8750", model=get_model("baichuan2-7b"),
                                 cache_dir=tmp_path) == bundle  # fmt: skip
    assert store.requests[2:] == [("HEAD", PATH)]


def test_baichuan2_for_another_chip_says_so(store, capsys):
    code = run_app(app, ["fetch", "--model", "baichuan2-7b", "--chipset", "SM8650"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[0] == (
        "error: Baichuan2-7B was published for SM8750 (Snapdragon 8 Elite) only "
        "(qai-hub-models v0.47.0 asset store), not for SM8650"
    )
    assert store.requests == []


def test_qwen25_says_why_in_one_line_without_the_network(monkeypatch, capsys):
    monkeypatch.setenv(STORE_ENV, "http://127.0.0.1:9")  # nothing listens: must not be asked
    code = run_app(app, ["fetch", "--model", "qwen2.5-7b-instruct", "--chipset", "SM8750"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines()[0] == (
        "error: Qwen2.5-7B-Instruct's context binaries are not published for download (no "
        "qai-hub-models release publishes them: it exports this model from its source); "
        "export them with your own AI Hub account"
    )
