"""Issue 31, item 6: Ctrl-C in a session chat says what really happened.

Failure mode: after a cut that ``dialog abort`` ended (a newer genie-app: the same process,
the model still loaded, the next turn warm) the chat said "genie-app was stopped on the phone;
the next turn starts it again (a model load)". Oracles: the phone's process table (was that
genie-app still running?), the next turn's figures (did it pay a load?), and the words shown,
hand-written here.
"""

from __future__ import annotations

import io

import pytest
from test_session_chat import _cut, genie_apps

from qwenchat.chat.repl import Repl
from qwenchat.chat.session import SamplerSettings, StopReason, open_chat_session

KEPT = (
    "[cut: the reply was aborted; genie-app still holds the model, so the next turn needs no "
    "model load (it sends the conversation again)]"
)
KILLED = (
    "[cut: genie-app was stopped on the phone; the next turn starts it again (a model load) "
    "and rebuilds the conversation]"
)


@pytest.mark.parametrize(("build", "said", "kept"), [("new", KEPT, True), ("old", KILLED, False)])
def test_the_cut_line_says_whether_genie_app_kept_the_model(bundled_phone, build, said, kept):
    emu, dev = bundled_phone(profile={"genie_app_build": build, "decode_tok_s": 20})
    session = open_chat_session(dev, engine="session", settings=SamplerSettings(max_tokens=300))
    try:
        session.send("hello")
        before = genie_apps(dev)
        cut = _cut(session, "write a long story")
        assert cut.stop is StopReason.CUT
        out = io.StringIO()
        Repl(session, out=out, confirm=lambda q: False).show(cut)
        shown = " ".join(out.getvalue().split())  # one line, however the console wrapped it
        assert said in shown, shown
        assert (genie_apps(dev) == before) is kept  # the phone agrees with the words
        session.update_settings(max_tokens=8)
        after = session.send("shorter please")
        assert (after.figures.host_load_s is None) is kept  # warm only when it was kept
    finally:
        session.end()
