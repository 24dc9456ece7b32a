"""RequestsFetcher against a real loopback HTTP server: a store URL that redirects (AI Hub's
downloads are served from wherever the store points) is followed for both HEAD and GET, a
link that drops mid-body is one resumable ConnectionError carrying every byte that arrived,
and a store that stalls mid-body is given up at the fetcher's timeout, not waited out."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from qwenchat.errors import HubError
from qwenchat.hub import INSTALL_HINT
from qwenchat.hub.transport import RequestsFetcher, _require

BODY = bytes(range(256)) * 1000  # 256 000 bytes
STALL_S = 8.0  # how long /stall holds its connection silent before it closes it
_release = threading.Event()  # set at teardown: a stalled handler lets go at once


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bool) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/file")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # /drop and /stall promise the whole BODY, send only its head, then the link drops
        # (or falls silent until the test ends); anything else is the whole file.
        head = {"/drop": 100_000, "/stall": 5000}.get(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        if head is None:
            self.send_header("X-Served", "file")
        self.end_headers()
        if not body:
            return
        if head is None:
            self.wfile.write(BODY)
            return
        self.wfile.write(BODY[:head])
        self.wfile.flush()
        if self.path == "/drop":
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            _release.wait(STALL_S)  # silent, then the link closes short

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(body=True)


@pytest.fixture
def server():
    _release.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _release.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_redirect_is_followed_for_head_and_get(server):
    fetcher = RequestsFetcher(timeout=10)
    head = fetcher.head(f"{server}/moved")
    assert head.status == 200 and head.headers["x-served"] == "file"
    got = fetcher.get(f"{server}/moved")
    assert got.status == 200 and b"".join(got.chunks) == BODY


def test_a_link_dropped_mid_body_is_a_connection_error_after_every_byte_that_came(server):
    got: list[bytes] = []
    response = RequestsFetcher(timeout=10).get(f"{server}/drop")
    with pytest.raises(ConnectionError):
        for chunk in response.chunks:
            got.append(chunk)
    assert b"".join(got) == BODY[:100_000]  # nothing received is lost: resume starts here


def test_a_store_that_stalls_mid_body_is_given_up_at_the_timeout_with_what_came(server):
    # The server would hold the link silent for STALL_S: the fetcher's 0.5 s read timeout
    # must end the wait long before, as one resumable ConnectionError.
    got: list[bytes] = []
    start = time.monotonic()
    response = RequestsFetcher(timeout=0.5).get(f"{server}/stall")
    with pytest.raises(ConnectionError):
        for chunk in response.chunks:
            got.append(chunk)
    assert time.monotonic() - start < STALL_S / 2
    assert b"".join(got) == BODY[:5000]


def test_a_missing_library_is_one_hub_error_with_the_install_hint():
    with pytest.raises(HubError) as err:
        _require("qwenchat_test_no_such_module")
    assert "qwenchat_test_no_such_module is missing" in str(err.value)
    assert err.value.hint == INSTALL_HINT
