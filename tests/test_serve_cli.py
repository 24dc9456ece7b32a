"""`qwenchat serve` as a user starts it: its refusals, and a SIGTERM that drains it.

Oracles: exit codes and the one error line (hand-written), the emulated phone's process
table, the store's rows read with sqlite3, what an HTTP client receives.

Failure modes, each tested below:
- listening beyond loopback without a key; a bad option answered with a traceback;
- SIGTERM losing the reply in flight (it must be stored, finished or cut), leaving
  genie-app running on the phone, or the server not exiting;
- a request queued at SIGTERM left hanging instead of refused (503).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

MODEL = "qwen2-7b-instruct"
BOUND_S = 60  # generous: a busy host; this checks that it ends, not how fast


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 listens beyond this machine: give it an --api-key"),
        (["--host", "192.168.1.7", "--api-key", " "], "--api-key is empty"),
        (["--queue", "-1"], "--queue must be 0 or more"),
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--engine", "turbo"], "unknown --engine 'turbo'"),
        (["--drain-timeout", "0"], "--drain-timeout must be above 0"),
    ],
)
def test_refusals_are_one_line_and_exit_2(args, words, capsys):
    assert run_app(app, ["serve", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def genie_apps(dev) -> list[int]:
    pids = []
    for line in dev.shell("ps -A -o PID,ARGS").text.splitlines():
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and args.strip().startswith("genie-app"):
            pids.append(int(pid))
    return pids


def test_sigterm_drains_stores_the_cut_reply_and_stops_genie_app(bundled_phone, tmp_path):
    emu, dev = bundled_phone(time_scale=1.0, profile={"init_ms": 100, "decode_tok_s": 20})
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenchat", "serve", "--connect", emu.address, "--transport",
         "direct", "--port", "0", "--queue", "4", "--drain-timeout", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        banner = b""
        deadline = time.monotonic() + BOUND_S
        while b"Ctrl-C" not in banner:
            assert proc.poll() is None and time.monotonic() < deadline, banner + (
                proc.stderr.read() if proc.poll() is not None else b"")
            banner += proc.stderr.read1(4096)
        url = re.search(rb"http://[\d.]+:\d+/v1", banner).group().decode()
        assert b"SIMULATED" in banner and b"engine session" in banner
        results: dict[str, object] = {}

        def queued():  # waits behind the long reply, then the drain refuses it
            results["queued"] = httpx.post(url + "/chat/completions", timeout=BOUND_S, json={
                "model": MODEL, "messages": [{"role": "user", "content": "me too"}]})

        with httpx.stream("POST", url + "/chat/completions", timeout=BOUND_S, json={
            "model": MODEL, "messages": [{"role": "user", "content": "write 300 tokens"}],
            "stream": True,
        }) as stream:
            lines = stream.iter_lines()
            while '"content": "S' not in next(lines):
                pass
            waiter = threading.Thread(target=queued)
            waiter.start()
            while httpx.get(url.removesuffix("/v1") + "/health").json()["queue"]["waiting"] < 1:
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            rest = "".join(lines)  # the stream ends: cut after the 1 s grace period
        waiter.join(BOUND_S)
        assert proc.wait(BOUND_S) in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Cut at the end of the grace period: an error event says so, never a finish_reason.
    assert '"code": "reply_cut"' in rest and "shutting down" in rest
    assert '"finish_reason": "stop"' not in rest and '"finish_reason": "length"' not in rest
    queued_answer = results["queued"]
    assert queued_answer.status_code == 503
    assert queued_answer.json()["error"]["code"] == "shutting_down"
    assert genie_apps(dev) == []  # genie-app stopped with the server
    from qwenchat.paths import store_path

    db = sqlite3.connect(store_path())
    rows = db.execute(
        "SELECT c.origin, m.stop_reason, length(m.content) FROM chat_messages m"
        " JOIN chat_conversations c ON c.id = m.conversation_id WHERE m.role = 'assistant'"
    ).fetchall()
    assert len(rows) == 1
    origin, stop, length = rows[0]
    assert origin == "served" and stop == "cut" and length > 0


def test_two_phones_from_repeated_serial_options_share_the_requests(bundled_phone):
    phones = [bundled_phone(serial=f"emulator-cli-{i}") for i in (1, 2)]
    args = [a for emu, _ in phones for a in ("-s", emu.address)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenchat", "serve", *args, "--transport", "direct",
         "--port", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        banner = b""
        deadline = time.monotonic() + BOUND_S
        while b"Ctrl-C" not in banner:
            assert proc.poll() is None and time.monotonic() < deadline, banner
            banner += proc.stderr.read1(4096)
        assert b"emulator-cli-1:" in banner and b"emulator-cli-2:" in banner
        url = re.search(rb"http://[\d.]+:\d+/v1", banner).group().decode()
        health = httpx.get(url.removesuffix("/v1") + "/health").json()
        assert sorted(p["serial"] for p in health["phones"]) == ["emulator-cli-1",
                                                                 "emulator-cli-2"]
        answers: list = []

        def ask(n: int) -> None:
            answers.append(httpx.post(url + "/chat/completions", timeout=BOUND_S, json={
                "model": MODEL, "messages": [{"role": "user", "content": f"write {n}00 tokens"}]}))

        threads = [threading.Thread(target=ask, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(BOUND_S)
        assert [a.status_code for a in answers] == [200, 200]
        assert {a.headers["x-qwenchat-phone"] for a in answers} == {"emulator-cli-1",
                                                                     "emulator-cli-2"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(BOUND_S) in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(genie_apps(dev) == [] for _, dev in phones)


def test_one_phone_named_twice_is_refused_and_left_clean(bundled_phone, capsys):
    emu, dev = bundled_phone()
    port = emu.address.rsplit(":", 1)[1]
    code = run_app(app, ["serve", "-s", f"127.0.0.1:{port}", "-s", f"localhost:{port}",
                         "--transport", "direct", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and f"-s localhost:{port} is the phone {emu.serial} again" in err
    assert genie_apps(dev) == []
