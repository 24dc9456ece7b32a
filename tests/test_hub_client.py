"""qai_hub for real: its config reading (a temp ~/.qai_hub/client.ini) and its HTTP calls,
answered by a recorded AI Hub API on 127.0.0.1 (protobuf bodies, as AI Hub's are); plus the
job-model fetch through ``HubClient``.

The token is a distinctive string. The recorded failures ECHO it -- in a 401/403 body, in a
header, in a job's failure reason -- and two client.ini mistakes make the libraries quote
it themselves (requests' InvalidHeader for a token spanning lines, configparser's
ParsingError for a line without '='). After each, the token (and every long piece of it)
must be absent from stdout, stderr, every log record and every file written.
"""

from __future__ import annotations

import http.server
import logging
import threading
from pathlib import Path

import pytest

pytest.importorskip("qai_hub", reason="pip install 'qwenchat[hub]'")

from qai_hub import public_api_pb2 as pb  # noqa: E402

from qwenchat.cli import app  # noqa: E402
from qwenchat.cli.errors import run_app  # noqa: E402
from qwenchat.errors import HubError  # noqa: E402
from qwenchat.hub import bundle_qairt_version  # noqa: E402
from qwenchat.hub.fetch import fetch_job_model  # noqa: E402
from qwenchat.hub.transport import HubJob  # noqa: E402

FAKE_TOKEN = "qh-FAKE-7f3e9c1d2b4a-SECRET"
# A token pasted across two lines: configparser joins them with "\n", requests quotes repr().
SPLIT_HEAD, SPLIT_TAIL = "qh-FAKE-7f3e9c1d", "2b4a-SECRET-TAIL"
QAIRT = "2.37.1.250807093845_124904"
PROTO = "application/x-protobuf"


class RecordedHub:
    """AI Hub's REST API on 127.0.0.1: path -> (status, headers, body); 401 otherwise."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[dict] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                hub.seen.append({"path": path, "auth": self.headers.get("Authorization")})
                status, headers, body = hub.routes.get(
                    path, (401, {"Content-Type": "application/json"}, b'{"detail": "Invalid token."}')
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def route(self, path: str, status: int, body: bytes, **headers: str) -> None:
        ctype = PROTO if status == 200 and not path.startswith("/files/") else "application/json"
        self.routes[path] = (status, {"Content-Type": ctype, **headers}, body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    h = RecordedHub()
    yield h
    h.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("QWENCHAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QAIHUB_CLIENT_INI", raising=False)
    return home


def _write_ini(home: Path, url: str, token: str = FAKE_TOKEN) -> None:
    (home / ".qai_hub").mkdir(exist_ok=True)
    (home / ".qai_hub" / "client.ini").write_text(
        f"[api]\napi_token = {token}\napi_url = {url}\nweb_url = {url}\nverbose = True\n"
    )


def _link_job(state: int = pb.JobState.JOB_STATE_DONE, failure: str = "") -> bytes:
    job = pb.Job(
        link_job=pb.LinkJob(
            link_job_id="jabc123",
            name="qwen2 part 1",
            job_state=state,
            failure_reason=failure,
            target_model=pb.Model(
                model_id="mt1",
                producer_id="jabc123",
                model_type=pb.ModelType.MODEL_TYPE_QNN_CONTEXT_BINARY,
                file_upload_complete=True,
            ),
        )
    )
    return job.SerializeToString()


def _secrets_nowhere(tmp_path: Path, texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, text
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "client.ini":
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path


def _run_cli(args, capsys, caplog) -> tuple[int, str, str, str]:
    code = run_app(app, args)
    out = capsys.readouterr()
    return code, out.out, out.err, caplog.text


# ------------------------------------------------------------------ config problems


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


def test_unparsable_ini_does_not_quote_the_token_line(home, tmp_path, capsys, caplog):
    # configparser's ParsingError quotes the line it cannot parse: here, the token's.
    caplog.set_level(logging.DEBUG)
    (home / ".qai_hub").mkdir()
    (home / ".qai_hub" / "client.ini").write_text(f"[api]\napi_token {FAKE_TOKEN}\n")
    code, out, err, logs = _run_cli(["fetch", "--hub-job", "jabc123"], capsys, caplog)
    _secrets_nowhere(tmp_path, [out, err, logs], FAKE_TOKEN)
    assert code == 1
    assert err.startswith("error: cannot read the AI Hub config") and "ParsingError" in err


# ------------------------------------------------------------------ AI Hub's answers


@pytest.mark.parametrize(
    "status,body,header,expected",
    [
        # A body and a header echoing what was sent (a proxy's or a debug server's habit).
        (401, f'{{"detail": "Invalid token {FAKE_TOKEN}."}}', "WWW-Authenticate", "401"),
        (403, f"Authorization: token {FAKE_TOKEN} may not read job jabc123", "X-Echo", "403"),
    ],
)
def test_refusals_that_echo_the_token_never_show_it(
    home, tmp_path, hub, capsys, caplog, monkeypatch, status, body, header, expected
):
    caplog.set_level(logging.DEBUG)
    hub.route(
        "/api/v1/jobs/jabc123/", status, body.encode(), **{header: f'token="{FAKE_TOKEN}"'}
    )
    _write_ini(home, hub.url)
    code, out, err, logs = _run_cli(["fetch", "--hub-job", "jabc123"], capsys, caplog)
    assert code == 1
    first, *rest = err.splitlines()
    assert first.startswith("error: AI Hub") and expected in first
    assert "Traceback" not in err
    # qai_hub really read client.ini and sent the token to the (recorded) API.
    assert hub.seen[0] == {"path": "/api/v1/jobs/jabc123/", "auth": f"token {FAKE_TOKEN}"}
    # --debug shows a traceback: still no token.
    monkeypatch.setenv("QWENCHAT_DEBUG", "0")  # restored after the test
    code, out2, err2, logs2 = _run_cli(["--debug", "fetch", "--hub-job", "jabc123"], capsys, caplog)
    assert code == 1 and "Traceback" in err2
    _secrets_nowhere(tmp_path, [out, err, logs, out2, err2, logs2], FAKE_TOKEN)


def test_failure_reason_echoing_the_token_is_scrubbed(home, tmp_path, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    reason = f"link failed for request with token {FAKE_TOKEN}: out of memory"
    hub.route("/api/v1/jobs/jabc123/", 200, _link_job(pb.JobState.JOB_STATE_FAILED, reason))
    _write_ini(home, hub.url)
    code, out, err, logs = _run_cli(["fetch", "--hub-job", "jabc123"], capsys, caplog)
    assert code == 1
    assert "AI Hub job jabc123 failed: link failed for request with token ***: out of memory" in (
        " ".join(err.split())
    )
    _secrets_nowhere(tmp_path, [out, err, logs], FAKE_TOKEN)


def test_token_pasted_across_two_lines_is_not_quoted_by_requests(
    home, tmp_path, hub, capsys, caplog
):
    # requests refuses the header and quotes its value with repr(): 'token qh-…\n…'.
    caplog.set_level(logging.DEBUG)
    (home / ".qai_hub").mkdir()
    (home / ".qai_hub" / "client.ini").write_text(
        f"[api]\napi_token = {SPLIT_HEAD}\n  {SPLIT_TAIL}\napi_url = {hub.url}\n"
        f"web_url = {hub.url}\n"
    )
    code, out, err, logs = _run_cli(["fetch", "--hub-job", "jabc123"], capsys, caplog)
    _secrets_nowhere(tmp_path, [out, err, logs], SPLIT_HEAD, SPLIT_TAIL)
    assert code == 1
    assert err.startswith("error: AI Hub failed while looking up job jabc123: InvalidHeader")
    assert "***" in err  # the library's words are kept, the token is not


def test_unknown_job_404(home, tmp_path, hub):
    hub.route("/api/v1/jobs/jabc123/", 404, b"Not found")
    _write_ini(home, hub.url)
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


def test_finished_job_gives_a_bundle_with_its_qairt_version(home, tmp_path, hub, capsys, caplog):
    """The whole way through qai_hub: job, target model download, the model's metadata."""
    caplog.set_level(logging.DEBUG)
    payload = bytes(range(256)) * 64
    hub.route("/api/v1/jobs/jabc123/", 200, _link_job())
    metadata = pb.ModelMetadata(
        entries={
            pb.ModelMetadataKey.MODEL_METADATA_KEY_QAIRT_SDK_VERSION: QAIRT,
            pb.ModelMetadataKey.MODEL_METADATA_KEY_QNN_CONTEXT_BIN_SOC_MODEL: "69",
            pb.ModelMetadataKey.MODEL_METADATA_KEY_QNN_CONTEXT_BIN_HEXAGON_VERSION: "v79",
        }
    )
    model = pb.Model(
        model_id="mt1",
        producer_id="jabc123",
        model_type=pb.ModelType.MODEL_TYPE_QNN_CONTEXT_BINARY,
        file_upload_complete=True,
        metadata=metadata,
    )
    hub.route("/api/v1/models/mt1/", 200, model.SerializeToString())
    download = pb.FileDownloadResponse(
        url=pb.FileDownloadURL(url=f"{hub.url}/files/mt1.bin", filename="mt1.bin")
    )
    hub.route("/api/v1/models/mt1/download/", 200, download.SerializeToString())
    hub.route("/files/mt1.bin", 200, payload, **{"Content-Type": "application/octet-stream"})
    _write_ini(home, hub.url)
    code, out, err, logs = _run_cli(["fetch", "--hub-job", "jabc123"], capsys, caplog)
    assert code == 0, err
    bundle = Path(out.strip())
    assert bundle == tmp_path / "cache" / "hub" / "jobs" / "jabc123" / "bundle"
    assert (bundle / "mt1.bin").read_bytes() == payload
    assert bundle_qairt_version(bundle) == QAIRT
    assert out.count("\n") == 1 and err == ""  # qai_hub's own prints stay out
    _secrets_nowhere(tmp_path, [out, err, logs], FAKE_TOKEN)


# ------------------------------------------------------------------ through HubClient


class FakeHubClient:
    """Stands in for AI Hub's servers behind our HubClient: a finished link job."""

    def __init__(self, state: str = "SUCCESS", payload: str = "bin", tools=None) -> None:
        self.state = state
        self.payload = payload
        self.tools = {"qairt": QAIRT, "soc_model": "69"} if tools is None else tools
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

    def target_model_tool_versions(self, job_id):
        if isinstance(self.tools, Exception):
            raise self.tools
        return dict(self.tools)


def test_job_model_becomes_a_cached_bundle_with_its_record(tmp_path):
    client = FakeHubClient()
    bundle = fetch_job_model("jabc123", cache_dir=tmp_path, client=client)
    assert sorted(p.name for p in bundle.iterdir()) == ["mabc.bin", "manifest.json"]
    assert bundle_qairt_version(bundle) == QAIRT
    assert fetch_job_model("jabc123", cache_dir=tmp_path, client=client) == bundle
    assert client.downloads == 1


def test_job_without_tool_versions_still_gives_a_bundle(tmp_path):
    client = FakeHubClient(tools=HubError("AI Hub failed while reading the model"))
    bundle = fetch_job_model("jabc123", cache_dir=tmp_path, client=client)
    assert (bundle / "mabc.bin").is_file() and bundle_qairt_version(bundle) is None


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


def test_bad_job_id_never_reaches_a_path(tmp_path):
    with pytest.raises(HubError, match="not an AI Hub job ID"):
        fetch_job_model("../../etc", cache_dir=tmp_path)
