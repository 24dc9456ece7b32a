"""`qwenchat serve` at the HTTP level: what a careless or hostile client sends, and what a
phone that fails does to a request. Raw HTTP (httpx) on a real loopback socket, emulated
phones behind it.

Oracles: hand-written statuses and error codes (OpenAI's), the emulated phone's command log
and process table, the store's rows read with sqlite3.

Failure modes, each tested below:
- malformed JSON, wrong types, an unknown endpoint or method answered with a traceback or a
  non-JSON body, or crashing the server (the next request must still be answered);
- a body over the limit read whole (declared, or chunked with no length) instead of a 413;
- a missing or wrong key let through; a right key refused; the key's check skipped on a route;
- an unknown model served by whatever the phone holds (404 expected);
- a request longer than the context sent to Genie (400 context_length_exceeded expected);
- a full queue holding a request instead of a 429 with Retry-After;
- a client that goes away mid-stream leaving the reply running on the phone (the phone must
  be free long before the reply would have ended; genie-app's `dialog abort`, the model kept
  loaded, the cut reply stored);
- Genie hanging reported as anything but 504; a vanished phone as anything but 502;
- message text reaching a shell command line on the phone.
"""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import openai
import pytest
from serve_helpers import MODEL, served_fixture  # noqa: F401

from qwenchat.emulator.commandlog import read_records

HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
# A phone that streams slowly (20 tok/s, real time) so a reply of 300 tokens takes ~15 s.
SLOW = {"phone": {"time_scale": 1.0}, "profile": {"init_ms": 100, "decode_tok_s": 20}}
LONG = {"model": MODEL, "messages": [{"role": "user", "content": "write 300 tokens"}],
        "stream": True}


def post(srv, payload=None, *, content=None, headers=None):
    return httpx.post(srv.base + "/chat/completions", json=payload, content=content,
                      headers=headers, timeout=60)


def openai_error(response: httpx.Response, status: int, code: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code
    return error


def shell_commands(emu) -> list[str]:
    return [r.get("what", "") for r in read_records(emu.root) if r.get("kind") == "shell"]


def test_bad_requests_get_openai_errors_and_the_server_goes_on(served):
    srv = served(max_body=4096)
    openai_error(post(srv, content=b'{"model": '), 400, "invalid_json")
    openai_error(post(srv, content=b"\x00\x01garbage"), 400, "invalid_json")
    error = openai_error(post(srv, {**HELLO, "max_tokens": "lots"}), 400, "invalid_value")
    assert error["param"] == "max_tokens"
    error = openai_error(post(srv, {**HELLO, "messages": [{"role": "user"}]}), 400,
                         "invalid_value")
    assert error["param"] == "messages[0].content"
    error = openai_error(post(srv, {**HELLO, "n": 3}), 400, "unsupported_parameter")
    assert error["param"] == "n"
    # Over the limit: declared, and chunked with no length at all.
    openai_error(post(srv, content=b"x" * 5000), 413, "body_too_large")

    def chunks():
        for _ in range(10):
            yield b"y" * 1000

    openai_error(post(srv, content=chunks()), 413, "body_too_large")
    error = openai_error(post(srv, {**HELLO, "model": "gpt-4o"}), 404, "model_not_found")
    assert error["param"] == "model" and MODEL in error["message"]
    openai_error(httpx.get(srv.base + "/nothing"), 404, "not_found")
    assert httpx.get(srv.base + "/chat/completions").status_code == 405
    # Still serving, and what it answers is right.
    answer = post(srv, HELLO)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]


def test_a_request_longer_than_the_context_is_refused_before_genie(served):
    srv = served()
    emu, _ = srv.phones[0]
    long_text = "word " * 5000  # ~5000 tokens; the context holds 4096
    error = openai_error(
        post(srv, {**HELLO, "messages": [{"role": "user", "content": long_text}]}), 400,
        "context_length_exceeded",
    )
    assert "4096" in error["message"]
    error = openai_error(post(srv, {**HELLO, "max_tokens": 5000}), 400, "invalid_value")
    assert "max_tokens" in error["message"]
    assert not any("dialog query" in r.get("what", "") for r in read_records(emu.root))


def test_the_api_key_guards_every_route(served):
    srv = served(api_key="s3cret")
    for route in ("/chat/completions", "/models"):
        method = httpx.post if route.endswith("completions") else httpx.get
        kwargs = {"json": HELLO} if method is httpx.post else {}
        openai_error(method(srv.base + route, **kwargs), 401, "invalid_api_key")
        openai_error(method(srv.base + route, headers={"Authorization": "Bearer wrong"},
                            **kwargs), 401, "invalid_api_key")
    openai_error(httpx.get(srv.url + "/health"), 401, "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.base, api_key="wrong").models.list()
    client = openai.OpenAI(base_url=srv.base, api_key="s3cret")
    assert client.chat.completions.create(**HELLO).choices[0].message.content


def test_user_text_never_reaches_a_shell_command_line(served):
    srv = served()
    emu, dev = srv.phones[0]
    evil = "$(touch /data/local/tmp/pwned); `reboot` ' \" && rm -rf / #"
    answer = post(srv, {**HELLO, "messages": [{"role": "system", "content": evil},
                                              {"role": "user", "content": evil}]})
    assert answer.status_code == 200
    assert not any("pwned" in line or "reboot" in line for line in shell_commands(emu))
    assert dev.stat("/data/local/tmp/pwned") is None


def test_a_full_queue_is_429_and_a_client_gone_mid_stream_frees_the_phone(served):
    srv = served(queue=0, **SLOW)
    emu, dev = srv.phones[0]
    post(srv, HELLO)  # the model is loaded; the genie-app that keeps it
    pids = genie_apps(dev)
    with httpx.stream("POST", srv.base + "/chat/completions", json=LONG, timeout=60) as stream:
        lines = stream.iter_lines()  # kept alive: closing it would close the connection
        while '"content": "S' not in next(lines):
            pass
        busy = post(srv, HELLO)
        error = openai_error(busy, 429, "queue_full")
        assert int(busy.headers["retry-after"]) >= 1 and "--queue 0" in error["message"]
        left = time.monotonic()
    # The client went away ~0.1 s into a ~15 s reply: the phone is free again well before.
    while httpx.get(srv.url + "/health").json()["phones"][0]["busy"]:
        assert time.monotonic() - left < 5, "the phone is still busy with a gone client"
        time.sleep(0.05)
    assert any("dialog abort" in r.get("what", "") for r in read_records(emu.root))
    assert genie_apps(dev) == pids  # aborted, not killed: the model stayed loaded
    db = sqlite3.connect(srv.db)
    cut = db.execute(
        "SELECT m.stop_reason, r.genie_num_generated_tokens FROM chat_messages m"
        " JOIN chat_replies r ON r.message_id = m.id ORDER BY m.id DESC LIMIT 1"
    ).fetchone()
    assert cut[0] == "cut" and (cut[1] is None or cut[1] < 300)
    after = post(srv, HELLO)
    assert after.status_code == 200
    assert sum("dialog create" in r.get("what", "") for r in read_records(emu.root)) == 1


def test_genie_hanging_is_504_and_the_next_request_is_served(served, phone_fault):
    from qwenchat.emulator.faults import clear_faults

    srv = served(load_timeout=2, stall_timeout=2)
    emu, _ = srv.phones[0]
    assert post(srv, HELLO).status_code == 200
    phone_fault(emu, "genie-hang-before-first-token")
    openai_error(post(srv, HELLO), 504, "genie_timeout")
    streamed = post(srv, {**HELLO, "stream": True})  # fails before any text: its own status
    openai_error(streamed, 504, "genie_timeout")
    clear_faults(emu.root, "genie-hang-before-first-token")
    assert post(srv, HELLO).status_code == 200


def test_a_phone_that_vanished_is_502(served):
    srv = served()
    emu, _ = srv.phones[0]
    assert post(srv, HELLO).status_code == 200
    emu.stop()
    openai_error(post(srv, {**HELLO, "messages": [{"role": "user", "content": "anyone?"}]}),
                 502, "phone_lost")
    health = httpx.get(srv.url + "/health")
    assert health.status_code in (200, 503)


def genie_apps(dev) -> set[int]:
    pids = set()
    for line in dev.shell("ps -A -o PID,ARGS").text.splitlines():
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and args.strip().startswith("genie-app"):
            pids.add(int(pid))
    return pids


def test_without_max_tokens_a_long_prompt_gets_what_the_context_has_left(served):
    """A prompt that fits, but not with the default reply length: the reply takes the room
    left (as OpenAI's API does without max_tokens); asked explicitly, it is a 400."""
    srv = served()
    text = "word " * 3700  # ~3700 tokens of 4096: the default 512-token reply does not fit
    answer = post(srv, {"model": MODEL, "messages": [{"role": "user", "content": text}]})
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= 4096
    openai_error(post(srv, {"model": MODEL, "max_tokens": 512,
                            "messages": [{"role": "user", "content": text}]}),
                 400, "context_length_exceeded")


def test_a_client_gone_before_a_whole_reply_frees_the_phone(served):
    """Not streamed: the server notices the closed connection and stops the reply."""
    import socket

    srv = served(**SLOW)
    emu, _ = srv.phones[0]
    post(srv, HELLO)  # loaded
    body = json.dumps({**LONG, "stream": False}).encode()
    host, port = srv.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        while not httpx.get(srv.url + "/health").json()["phones"][0]["busy"]:
            time.sleep(0.02)
        time.sleep(0.5)  # the reply is under way (~15 s of it)
    left = time.monotonic()
    while httpx.get(srv.url + "/health").json()["phones"][0]["busy"]:
        assert time.monotonic() - left < 5, "the phone is still busy with a gone client"
        time.sleep(0.05)
    assert any("dialog abort" in r.get("what", "") for r in read_records(emu.root))
