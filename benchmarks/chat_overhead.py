"""Chat overhead on the host, and prompt tokens per turn, against the emulated phone.

1. Host CPU per streamed token: a reply's stdout chunks (as they came over ADB) replayed
   through the parser and the terminal renderer into a pseudo-terminal, timed with
   ``time.process_time``. Replaying keeps the in-process emulator's own CPU out of the figure.
2. Token on screen after its bytes arrive: during a live reply, the time from a chunk
   leaving the transport iterator to the end of write + flush of its text (host clock).
3. Ten-turn conversation: Genie's profile ``num-prompt-tokens`` per turn (flat = only the new
   turn is prefilled) next to the full-history size a stateless client would send.

Everything here is SIMULATED (emulated phone); the figures measure the host side only.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

TIME_SCALE = 0.02


def _pty_sink():
    """A terminal-like sink: the slave end of a pty, drained by a thread."""
    import io

    master, slave = os.openpty()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    out = io.TextIOWrapper(io.FileIO(slave, "w", closefd=True), encoding="utf-8")

    def close() -> None:
        stop.set()
        out.close()
        os.close(master)

    return out, close


def main() -> dict:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.chat.render import ReplyStream
    from qwenchat.chat.session import SamplerSettings, full_prompt, open_chat_session
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer
    from qwenchat.genie.events import ReplyText
    from qwenchat.genie.stream import GenieStreamParser
    from qwenchat.layout import PhoneLayout

    tmp = Path(tempfile.mkdtemp(prefix="qwenchat-bench-chat-"))
    os.environ.setdefault("QWENCHAT_HOME", str(tmp / "home"))
    bundle = make_bundle(tmp / "bundle", bin_size_mb=1, arch="v79", parts=4)
    config = EmulatorConfig(root=tmp / "phone", time_scale=TIME_SCALE, jitter=False, auth=False)
    server = EmulatorServer(config, port=0)
    server.start()
    results: dict = {"simulated": True, "time_scale": TIME_SCALE}
    try:
        dev = DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5)
        plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
        push_assets(dev, plan, PhoneLayout(), overlap=False)
        session = open_chat_session(dev, settings=SamplerSettings(max_tokens=200))
        engine = session.engine

        # --- live reply: arrival → on screen, and the chunks for the CPU replay
        out, close = _pty_sink()
        chunks: list[bytes] = []
        engine.timing = []
        original = dev.stream_shell

        def recording_stream_shell(command, **kw):  # noqa: ANN001, ANN202
            stream = original(command, **kw)
            inner = stream.__iter__

            class _Recorder:
                def __iter__(self_inner):  # noqa: N805, ANN204
                    for chunk in inner():
                        chunks.append(chunk)
                        yield chunk

                def __getattr__(self_inner, name):  # noqa: N805, ANN001, ANN204
                    return getattr(stream, name)

                def __enter__(self_inner):  # noqa: N805, ANN204
                    return self_inner

                def __exit__(self_inner, *exc):  # noqa: N805, ANN001, ANN204
                    stream.close()

            return _Recorder()

        dev.stream_shell = recording_stream_shell  # type: ignore[method-assign]
        view = ReplyStream(out, markdown=False)
        result = session.send("Explain what an NPU does, in detail.", view.write)
        dev.stream_shell = original  # type: ignore[method-assign]
        timing = engine.timing
        engine.timing = None
        lat_ms = sorted((shown - arrived) * 1000 for arrived, shown in timing)
        results["live_reply"] = {
            "tokens_generated_genie": result.figures.genie_generated_tokens,
            "chunks": len(lat_ms),
            "chunk_to_screen_ms_median": round(statistics.median(lat_ms), 4),
            "chunk_to_screen_ms_p99": round(lat_ms[int(len(lat_ms) * 0.99) - 1], 4),
            "chunk_to_screen_ms_max": round(lat_ms[-1], 4),
            "source": "host clock (perf_counter), chunk out of the transport → after write+flush",
        }

        # --- replay: host CPU per token of parse + render into a pty
        prompt = full_prompt(None, session.messages[:1])
        tokens = 0
        repeats = 20
        cpu0 = time.process_time()
        for _ in range(repeats):
            parser = GenieStreamParser(prompt)
            view = ReplyStream(out, markdown=False)
            for chunk in chunks:
                for event in parser.feed(chunk):
                    if isinstance(event, ReplyText) and event.text:
                        view.write(event.text)
            parser.finish()
            view.finish()
        cpu = time.process_time() - cpu0
        tokens = (result.figures.genie_generated_tokens or 0) * repeats
        results["host_cpu_per_token_ms"] = round(cpu / max(tokens, 1) * 1000, 4)
        results["host_cpu_source"] = (
            f"time.process_time over {repeats} replays of {len(chunks)} recorded ADB chunks "
            "(parser + renderer → pty)"
        )
        close()

        # --- ten turns: prompt tokens per turn (Genie's profile)
        session.clear()
        session.update_settings(max_tokens=48)
        turns = []
        for i in range(10):
            reply = session.send(f"Question {i}: tell me one more fact about phones.")
            stateless = session.counter.count(full_prompt(None, session.messages[:-1]))
            turns.append(
                {
                    "turn": i + 1,
                    "mode": reply.mode.value,
                    "genie_num_prompt_tokens": reply.figures.genie_prompt_tokens,
                    "full_history_tokens": stateless,
                    "ctx_used": reply.figures.ctx_used,
                }
            )
        results["ten_turns"] = turns
        dev.close()
    finally:
        server.stop()

    live = results["live_reply"]
    print(
        f"  host CPU per streamed token: {results['host_cpu_per_token_ms']} ms (target ≤ 1 ms)"
    )
    print(
        f"  chunk → on screen: median {live['chunk_to_screen_ms_median']} ms, "
        f"p99 {live['chunk_to_screen_ms_p99']} ms, max {live['chunk_to_screen_ms_max']} ms "
        f"over {live['chunks']} chunks (target ≤ 10 ms)"
    )
    print("  turn  mode       genie prompt tok  full history tok  ctx used   (SIMULATED)")
    for t in results["ten_turns"]:
        print(
            f"  {t['turn']:>4}  {t['mode']:<9}  {t['genie_num_prompt_tokens']!s:>16}"
            f"  {t['full_history_tokens']:>16}  {t['ctx_used']!s:>8}"
        )
    return results


if __name__ == "__main__":
    main()
