"""`qwenchat serve` against the chat session it wraps, on two emulated phones (issue #30).

Measured in one run, printed as ratios and differences of figures taken side by side:

* host overhead of a served request: the client's wall time of a non-streamed request minus
  the session's own time for that turn (host clock, the worker's ``send``), median; and the
  median served request against the median direct ``ChatSession.send`` turn on the same
  phone (goal: overhead <= 5 ms);
* first streamed byte of a follow-up (client clock, request sent -> first content chunk)
  against Genie's TTFT for that query (its profile), median (goal: <= TTFT + 30 ms);
* tokens Genie prefilled per follow-up (its profile), ten follow-ups of equal length: flat
  (max - min == 0) while the cached part grows;
* throughput under 8 concurrent clients, two phones against one (goal: >= 1.8x).

Everything on the phone is SIMULATED (the emulated phone's device profile at TIME_SCALE);
the host side (HTTP, routing, JSON/SSE, the session, ADB round trips) is real. The phones run
as their own processes (the emulator's daemon), as a phone's adbd does.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

TIME_SCALE = 0.5
TURNS = 10
MAX_TOKENS = 16
# Longer replies for the throughput: the phones' time, not the one host process's, is what
# two phones share out (the host's own work per request is the same with one or two).
THROUGHPUT_TOKENS = 48
CLIENTS = 8
REQUESTS_PER_CLIENT = 2
MODEL = "qwen2-7b-instruct"
OVERHEAD_GOAL_MS = 5.0
FIRST_BYTE_GOAL_MS = 30.0
THROUGHPUT_GOAL = 1.8
MESSAGES = [f"Question {i:02d}: say something short about NPUs." for i in range(TURNS + 1)]


def _phones(tmp: Path, n: int):  # noqa: ANN202
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.daemon import start_daemon
    from qwenchat.layout import PhoneLayout

    bundle = make_bundle(tmp / "bundle", bin_size_mb=1, arch="v79", parts=4)
    phones = []
    for i in range(n):
        config = EmulatorConfig(root=tmp / f"phone{i}", time_scale=TIME_SCALE, auth=False,
                                serial=f"emulator-bench-{i + 1:04d}")
        running = start_daemon(config, port=0)
        dev = DirectDevice.connect_tcp("127.0.0.1", running.port, auth_timeout=5)
        plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
        push_assets(dev, plan, PhoneLayout(), overlap=False)
        phones.append((config, dev))
    return phones


def _session(dev):  # noqa: ANN001, ANN202
    from qwenchat.chat.session import SamplerSettings, open_chat_session
    from qwenchat.store import open_store

    session = open_chat_session(dev, engine="session", store=open_store(),
                                settings=SamplerSettings(max_tokens=MAX_TOKENS), warm=False)
    session.send("warm up: load the model")  # the load is not what is measured here
    return session


def _serve(sessions):  # noqa: ANN001, ANN202
    from qwenchat.serve.phones import PhoneSlot
    from qwenchat.serve.pool import Pool
    from qwenchat.serve.server import start_in_thread

    return start_in_thread(Pool([PhoneSlot(s) for s in sessions], limit=64))


def _direct_turns(dev) -> list[float]:  # noqa: ANN001
    session = _session(dev)
    walls = []
    try:
        for text in MESSAGES[:TURNS]:
            began = time.perf_counter()
            session.send(text)
            walls.append(time.perf_counter() - began)
    finally:
        session.end()
    return walls


def _served_turns(client, url: str) -> tuple[list[float], list[float], list[dict]]:  # noqa: ANN001
    """Non-streamed turns of one conversation: client wall, the session's own time."""
    walls, inside, usages = [], [], []
    messages: list[dict] = []
    for text in MESSAGES[:TURNS]:
        messages.append({"role": "user", "content": text})
        began = time.perf_counter()
        response = client.post(url + "/v1/chat/completions", json={
            "model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS})
        walls.append(time.perf_counter() - began)
        body = response.json()
        inside.append(body["qwenchat"]["host_session_s"])
        usages.append({**body["usage"], "prefilled": body["qwenchat"]["prefilled_tokens"],
                       "mode": body["qwenchat"]["prompt_mode"]})
        messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
    return walls, inside, usages


def _first_bytes(client, url: str) -> list[tuple[float, float]]:  # noqa: ANN001
    """Streamed follow-ups: (client first content byte s, Genie TTFT s, the session's own
    first token s: host clock from its send to the reply's first text)."""
    out = []
    messages = [{"role": "user", "content": MESSAGES[0]}]
    first = client.post(url + "/v1/chat/completions", json={
        "model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS}).json()
    messages.append({"role": "assistant", "content": first["choices"][0]["message"]["content"]})
    for text in MESSAGES[1:TURNS + 1]:
        messages.append({"role": "user", "content": text})
        began = time.perf_counter()
        first_byte, reply, ttft, own = None, "", None, None
        with client.stream("POST", url + "/v1/chat/completions", json={
            "model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS, "stream": True,
            "stream_options": {"include_usage": True},
        }) as response:
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first_byte = first_byte or time.perf_counter() - began
                    reply += chunk["choices"][0]["delta"]["content"]
                if chunk.get("usage"):
                    figures = chunk["qwenchat"]["figures"]
                    ttft = figures["genie"]["time_to_first_token_us"] / 1e6
                    own = figures["host"]["first_token_s"]
        messages.append({"role": "assistant", "content": reply})
        out.append((first_byte, ttft, own))
    return out


def _throughput(url: str) -> float:
    """Requests per second, 8 clients at once, each its own new conversations."""
    import httpx

    def client_run(n: int) -> int:
        done = 0
        with httpx.Client(timeout=300) as client:
            for k in range(REQUESTS_PER_CLIENT):
                r = client.post(url + "/v1/chat/completions", json={
                    "model": MODEL, "max_tokens": THROUGHPUT_TOKENS,
                    "messages": [{"role": "user", "content": f"client {n} request {k}"}]})
                done += r.status_code == 200
        return done

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        done = sum(pool.map(client_run, range(CLIENTS)))
    wall = time.perf_counter() - began
    assert done == CLIENTS * REQUESTS_PER_CLIENT, f"only {done} requests answered"
    return done / wall


def main() -> dict:
    import httpx

    from qwenchat.emulator.daemon import stop_daemon

    tmp = Path(tempfile.mkdtemp(prefix="qwenchat-bench-serve-"))
    os.environ.setdefault("QWENCHAT_HOME", str(tmp / "home"))
    phones = _phones(tmp, 2)
    try:
        (_, dev_a), (_, dev_b) = phones
        direct = _direct_turns(dev_a)
        server = _serve([_session(dev_a)])
        try:
            with httpx.Client(timeout=300) as client:
                served, inside, usages = _served_turns(client, server.url)
                first_bytes = _first_bytes(client, server.url)
            one_phone = _throughput(server.url)
        finally:
            server.stop()
        server = _serve([_session(dev_a), _session(dev_b)])
        try:
            two_phones = _throughput(server.url)
        finally:
            server.stop()
    finally:
        for config, dev in phones:
            dev.close()
            stop_daemon(config.root)

    overhead_ms = [(w - i) * 1000 for w, i in zip(served, inside, strict=True)]
    over_ttft_ms = [(fb - ttft) * 1000 for fb, ttft, _ in first_bytes]
    over_own_ms = [(fb - own) * 1000 for fb, _, own in first_bytes]
    prefilled = [u["prefilled"] for u in usages[1:]]
    cached = [u["prompt_tokens_details"]["cached_tokens"] for u in usages[1:]]
    ratio = two_phones / one_phone
    median_overhead = statistics.median(overhead_ms)
    median_first = statistics.median(over_ttft_ms)
    print(f"  {TURNS}-turn conversation, {MAX_TOKENS} tokens per reply, time scale {TIME_SCALE}"
          " (phone figures SIMULATED; host figures real)")
    print(f"  served request over the session's own turn time: median {median_overhead:.1f} ms,"
          f" max {max(overhead_ms):.1f} ms (goal <= {OVERHEAD_GOAL_MS:.0f}) -> "
          f"{'PASS' if median_overhead <= OVERHEAD_GOAL_MS else 'FAIL'}")
    print(f"  served request / direct ChatSession.send, medians: "
          f"{statistics.median(served) * 1000:.0f} ms / {statistics.median(direct) * 1000:.0f}"
          f" ms = {statistics.median(served) / statistics.median(direct):.3f}")
    print(f"  follow-up first streamed byte over Genie's TTFT: median {median_first:.1f} ms, "
          f"max {max(over_ttft_ms):.1f} ms (goal <= {FIRST_BYTE_GOAL_MS:.0f}) -> "
          f"{'PASS' if median_first <= FIRST_BYTE_GOAL_MS else 'FAIL'}")
    print(f"    of which the chat session's own path (its first token over TTFT): median "
          f"{statistics.median(over_ttft_ms) - statistics.median(over_own_ms):.1f} ms; the "
          f"server's (first byte over the session's first token): median "
          f"{statistics.median(over_own_ms):.1f} ms")
    flat = max(prefilled) - min(prefilled) == 0 and all(u["mode"] == "followup"
                                                       for u in usages[1:])
    print(f"  tokens prefilled per follow-up (Genie's profile): {prefilled} -> "
          f"{'flat' if flat else 'NOT flat'}; cached: {cached[0]} .. {cached[-1]}")
    print(f"  {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests: one phone {one_phone:.2f} req/s,"
          f" two phones {two_phones:.2f} req/s, ratio {ratio:.2f} (goal >= {THROUGHPUT_GOAL}) -> "
          f"{'PASS' if ratio >= THROUGHPUT_GOAL else 'FAIL'}")
    return {
        "simulated": True,
        "time_scale": TIME_SCALE,
        "served_overhead_ms": {"median": median_overhead, "max": max(overhead_ms),
                               "samples": overhead_ms},
        "served_over_direct_median_ratio": statistics.median(served) / statistics.median(direct),
        "first_byte_over_ttft_ms": {"median": median_first, "samples": over_ttft_ms},
        "first_byte_over_session_first_token_ms": {"median": statistics.median(over_own_ms),
                                                   "samples": over_own_ms},
        "prefilled_per_followup": prefilled,
        "cached_per_followup": cached,
        "throughput_req_s": {"one_phone": one_phone, "two_phones": two_phones,
                             "ratio": ratio},
        "goals": {"overhead_ms": OVERHEAD_GOAL_MS, "first_byte_ms": FIRST_BYTE_GOAL_MS,
                  "throughput_ratio": THROUGHPUT_GOAL},
    }


if __name__ == "__main__":
    main()
