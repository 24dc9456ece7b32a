"""qai_hub for real: its config reading (a temp ~/.qai_hub/client.ini) and its HTTP calls,
answered by a recorded AI Hub on 127.0.0.1; plus the job-model fetch through ``HubClient``.
The token is checked never to reach output, logs or files."""

from __future__ import annotations

import http.server
import logging
import threading
from pathlib import Path

import pytest

pytest.importorskip("qai_hub", reason="pip install 'qwenchat[hub]'")

from qwenchat.errors import HubError  # noqa: E402
from qwenchat.hub.fetch import fetch_job_model  # noqa: E402
from qwenchat.hub.transport import HubJob  # noqa: E402

FAKE_TOKEN = "qh-FAKE-7f3e9c1d2b4a-SECRET"


class _RecordedHub(http.server.BaseHTTPRequestHandler):
    status = 401
    body = b'{"detail": "Invalid token."}'
    seen: list[dict] = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_server():
    _RecordedHub.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordedHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("QAIHUB_CLIENT_INI", raising=False)
    return home


def _write_ini(home: Path, url: str, token: str = FAKE_TOKEN) -> None:
    (home / ".qai_hub").mkdir()
    (home / ".qai_hub" / "client.ini").write_text(
        f"[api]\napi_token = {token}\napi_url = {url}\nweb_url = {url}\nverbose = True\n"
    )


def _assert_token_nowhere(tmp_path: Path, capsys, caplog, *texts: str) -> None:
    out = capsys.readouterr()
    for text in (out.out, out.err, caplog.text, *texts):
        assert FAKE_TOKEN not in text
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "client.ini":
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_no_client_ini_is_one_clear_error(home, tmp_path):
    with pytest.raises(HubError, match="no AI Hub API token configured") as info:
        fetch_job_model("jabc123", cache_dir=tmp_path / "cache")
    assert "qai-hub configure --api_token" in info.value.hint
    assert str(home / ".qai_hub" / "client.ini") in info.value.message


def test_ini_without_token_field(home, tmp_path):
    (home / ".qai_hub").mkdir()
    (home / ".qai_hub" / "client.ini").write_text("[api]\napi_url = https://x\n")
    with pytest.raises(HubError, match="no AI Hub API token in"):
        fetch_job_model("jabc123", cache_dir=tmp_path / "cache")


def test_401_from_hub_is_one_line_and_token_stays_secret(
    home, tmp_path, hub_server, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    _write_ini(home, f"http://127.0.0.1:{hub_server.server_port}")
    with pytest.raises(HubError) as info:
        fetch_job_model("jabc123", cache_dir=tmp_path / "cache")
    err = info.value
    assert "401" in err.message and "\n" not in err.message
    assert "qai-hub configure" in err.hint
    # qai_hub really read client.ini and sent the token to the (recorded) API.
    assert _RecordedHub.seen[0]["path"] == "/api/v1/jobs/jabc123/"
    assert _RecordedHub.seen[0]["auth"] == f"token {FAKE_TOKEN}"
    _assert_token_nowhere(tmp_path, capsys, caplog, err.message, err.hint or "")


def test_unknown_job_404(home, tmp_path, hub_server, monkeypatch):
    monkeypatch.setattr(_RecordedHub, "status", 404)
    monkeypatch.setattr(_RecordedHub, "body", b"Not found")
    _write_ini(home, f"http://127.0.0.1:{hub_server.server_port}")
    with pytest.raises(HubError, match="no job jabc123"):
        fetch_job_model("jabc123", cache_dir=tmp_path / "cache")


def test_hub_unreachable(home, tmp_path, monkeypatch):
    import socket

    # A port bound but not listening refuses connections, and stays ours for the whole test:
    # a port closed again could be taken by another worker's recorded AI Hub server.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        monkeypatch.setattr("qai_hub.util.session.MAX_RETRIES", 0, raising=False)
        _write_ini(home, f"http://127.0.0.1:{port}")
        with pytest.raises(HubError, match="cannot reach"):
            fetch_job_model("jabc123", cache_dir=tmp_path / "cache")


def test_bad_job_id_never_reaches_a_path(tmp_path):
    with pytest.raises(HubError, match="not an AI Hub job ID"):
        fetch_job_model("../../etc", cache_dir=tmp_path)


class FakeHubClient:
    """Stands in for AI Hub's servers: a finished link job whose model is one .bin."""

    def __init__(self, state: str = "SUCCESS", payload: str = "bin") -> None:
        self.state = state
        self.payload = payload
        self.downloads = 0

    def get_job(self, job_id):
        return HubJob(
            job_id,
            "link",
            self.state,
            "qwen2 part",
            "OOM on device" if self.state == "FAILED" else "",
        )

    def download_target_model(self, job_id, dest):
        self.downloads += 1
        dest.mkdir(parents=True, exist_ok=True)
        if self.payload == "bin":
            out = dest / "mabc.bin"
            out.write_bytes(b"\x01" * 64)
        else:
            out = dest / "readme.txt"
            out.write_text("no binaries")
        return out


def test_job_model_becomes_a_cached_bundle(tmp_path):
    client = FakeHubClient()
    bundle = fetch_job_model("jabc123", cache_dir=tmp_path, client=client)
    assert sorted(p.name for p in bundle.iterdir()) == ["mabc.bin"]
    assert fetch_job_model("jabc123", cache_dir=tmp_path, client=client) == bundle
    assert client.downloads == 1


@pytest.mark.parametrize(
    "state,pattern", [("FAILED", "failed: OOM"), ("OPTIMIZING_MODEL", "not finished")]
)
def test_unfinished_or_failed_job(tmp_path, state, pattern):
    with pytest.raises(HubError, match=pattern):
        fetch_job_model("jabc123", cache_dir=tmp_path, client=FakeHubClient(state))


def test_job_without_bins_leaves_no_bundle(tmp_path):
    with pytest.raises(HubError, match="no .bin"):
        fetch_job_model("jabc123", cache_dir=tmp_path, client=FakeHubClient(payload="txt"))
    assert not (tmp_path / "hub" / "jobs" / "jabc123" / "bundle").exists()
