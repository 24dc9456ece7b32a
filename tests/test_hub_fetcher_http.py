"""RequestsFetcher against a real loopback HTTP server: a store URL that redirects (AI Hub's
downloads are served from wherever the store points) is followed for both HEAD and GET, and a
link that drops mid-body is one resumable ConnectionError carrying every byte that arrived."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from qwenchat.hub.transport import RequestsFetcher

BODY = bytes(range(256)) * 1000  # 256 000 bytes


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
        if self.path == "/drop":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            if body:
                self.wfile.write(BODY[:100_000])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("X-Served", "file")
        self.end_headers()
        if body:
            self.wfile.write(BODY)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(body=True)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
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
