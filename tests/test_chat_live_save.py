"""A reply is saved as it grows, without a write per token (the store's promise: a host crash
loses at most a fraction of a second of a reply, never the whole message).

Judged from outside the session: a second SQLite connection to the same store file reads the
stored reply every time a piece of text reaches the screen, as another process (or the file
left after a crash) would see it. The emulated phone decodes slowly (its device profile, at
time scale 1), so the reply streams for seconds in many pieces.

Fails for: a reply stored only when it ends (or only its first piece until then: a crash
mid-reply would lose all but that), and a reply rewritten in the store at every piece.
"""

from __future__ import annotations

import sqlite3
import time

from qwenchat.chat.session import SamplerSettings, StopReason, open_chat_session
from qwenchat.store import open_store

ASK = "Tell me about phones, 200 tokens"  # the simulated Genie answers with >= 200 tokens
PROFILE = {"init_ms": 50, "prefill_chunk_ms": 5, "decode_tok_s": 100}  # 200 tokens: ~2 s


def test_a_streaming_reply_is_saved_as_it_grows_but_not_at_every_piece(bundled_phone, tmp_path):
    _, dev = bundled_phone(profile=PROFILE, time_scale=1.0)
    path = tmp_path / "store.db"
    with open_store(path) as store:
        s = open_chat_session(dev, store=store, settings=SamplerSettings(max_tokens=400))
        reader = sqlite3.connect(path, timeout=10)  # another connection: what a crash leaves
        seen: list[str] = []  # the reply as stored, read after every piece
        shown: list[str] = []  # the pieces, as the screen got them

        def on_text(piece: str) -> None:
            shown.append(piece)
            row = reader.execute(
                "SELECT content FROM chat_messages WHERE conversation_id = ? AND role = 'assistant'"
                " ORDER BY id DESC LIMIT 1",
                (s.session_id,),
            ).fetchone()
            stored = row[0] if row else None
            on_screen = "".join(shown)
            # Never more than the screen shows (nor anything else than what it shows).
            assert stored is not None and on_screen.startswith(stored)
            seen.append(stored)

        started = time.monotonic()
        result = s.send(ASK, on_text=on_text)
        elapsed = time.monotonic() - started
        final = reader.execute(
            "SELECT content FROM chat_messages WHERE conversation_id = ? AND role = 'assistant'",
            (s.session_id,),
        ).fetchall()
        reader.close()

    assert result.stop is StopReason.EOS, result
    assert result.figures.genie_generated_tokens >= 200  # whole sentences: at least that
    assert "".join(shown) == result.text and final == [(result.text,)]
    assert len(shown) >= 50, f"only {len(shown)} pieces: the reply did not stream"

    versions = list(dict.fromkeys(seen))  # the distinct stored states, in order
    # It grew while streaming: beyond the first piece (stored when the reply began), several
    # more saves came before the end, each a longer prefix of the reply.
    assert len(versions) >= 3, f"stored mid-reply only as {versions!r}"
    assert all(len(a) < len(b) for a, b in zip(versions, versions[1:], strict=False))
    # ... but not at every piece: at most one save per half second of streaming (the
    # interval the store promises), far fewer than the pieces that arrived.
    assert len(versions) <= elapsed / 0.5 + 2, (len(versions), elapsed)
    assert len(versions) * 5 <= len(shown), (len(versions), len(shown))
