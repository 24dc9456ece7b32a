"""Control characters from the model or the store never act on the user's terminal (#27).

Failure modes, each tested:
- a reply's ESC[2J / OSC title / ESC[?1049h / CR / C1 CSI / bidi override is written raw
  while it streams (pipe and terminal alike) or in the Markdown redraw;
- ``qwenchat history`` replays a stored message's escapes raw (the list's first-message
  column, and the conversation);
- the store or ``--json`` loses the text as it came (it must keep it; JSON escapes it);
- newline and tab are mangled (they must stay);
- at 80 columns the conversation ids, the only place that lists them, are cut.
"""

from __future__ import annotations

import io
import json

from qwenchat.chat.render import ReplyStream
from qwenchat.cli import app
from qwenchat.cli.errors import run_app

ESCAPES = "a\x1b[2Jb\x1b]0;pwned\x07c\x1b[?1049h\rd\x9b31m\u202eevil\n\tok\x7f\x00"
# Written by hand: C0 and DEL as control pictures, C1 and bidi as <U+XXXX>.
SHOWN = "a\u241b[2Jb\u241b]0;pwned\u2407c\u241b[?1049h\u240dd<U+009B>31m<U+202E>evil\n\tok\u2421\u2400"


def test_a_streamed_reply_shows_control_characters_instead_of_sending_them():
    out = io.StringIO()
    stream = ReplyStream(out)
    for ch in ESCAPES:  # however it is chunked
        stream.write(ch)
    stream.finish()
    assert out.getvalue() == SHOWN + "\n"


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_and_history_show_escapes_the_store_and_json_keep_them(bundled_phone, capsys,
                                                                     monkeypatch):
    emu, _ = bundled_phone()
    where = ["--connect", emu.address, "--transport", "direct"]
    # The simulated model quotes the message back: its reply carries the escapes.
    message = "hi \x1b[2J\x1b]0;pwned\x07 there"
    code, out, err = _cli(capsys, "run", *where, "--max-tokens", "30", message)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "hi \u241b[2J\u241b]0;pwned\u2407 there" in out

    code, out, err = _cli(capsys, "history", "last")
    assert code == 0, err
    assert "\x1b" not in out and "\u241b[2J" in out

    code, out, err = _cli(capsys, "history", "last", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["messages"][0]["content"] == message  # kept as it came
    assert "\\u001b" in out and "\x1b" not in out

    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = _cli(capsys, "history")
    assert code == 0, err
    assert "\x1b" not in out
    assert data["id"] in out  # the whole id, at 80 columns
