"""`fetch --hub-job J` without a network says so in one line within seconds: qai_hub's own
retries took ~50 s to give up on a refused connection; qwenchat first makes one bounded TCP
connect to the API host (REACH_S) and says "cannot reach Qualcomm AI Hub" when it fails,
before the library is asked anything.

Failure modes: the library is called (and retries for most of a minute) although the host
refuses connections; the message differs from the other unreachable cases; the check is
skipped when a proxy is configured (it must probe the proxy instead of the host).
"""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("qai_hub")

from qwenchat.errors import HubError  # noqa: E402
from qwenchat.hub import qaihub  # noqa: E402


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connect is refused at once
    return port


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".qai_hub").mkdir(parents=True)
    url = f"http://127.0.0.1:{_closed_port()}"
    (home / ".qai_hub" / "client.ini").write_text(
        f"[api]\napi_token = not-a-real-token\napi_url = {url}\nweb_url = {url}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("QAIHUB_CLIENT_INI", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_a_refused_connection_is_one_line_before_the_library_is_asked(offline_home):
    client = qaihub.QaiHubClient()
    asked = []
    client._client.get_job = lambda *a, **k: asked.append(a)  # the library's entry point
    with pytest.raises(HubError) as info:
        client.get_job("jabc123")
    assert info.value.message == "cannot reach Qualcomm AI Hub while looking up job jabc123"
    assert info.value.hint == "Check the network connection (and any proxy), then try again."
    assert asked == []


def test_with_a_proxy_the_proxy_is_what_must_answer(offline_home, monkeypatch):
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{listening.getsockname()[1]}")
    client = qaihub.QaiHubClient()
    asked = []
    client._client.get_job = lambda *a, **k: asked.append(a) or (_ for _ in ()).throw(
        HubError("asked"))  # fmt: skip
    try:
        with pytest.raises(HubError, match="asked"):
            client.get_job("jabc123")  # the proxy accepts: the library is asked
    finally:
        listening.close()
    assert asked == [("jabc123",)]
