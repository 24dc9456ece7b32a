"""A one-shot question whose Genie does not answer says, live, what it waits for and for how
long (issue #27: a hung Genie printed nothing for its whole, long by design, load bound).

Failure modes, each tested:
- nothing on stderr while the first token is awaited (the notice must come within seconds,
  before the bound ends, naming the bound);
- the notice leaks into stdout (the reply) or stays after the reply started;
- a healthy, fast answer gets a notice (it must not).
"""

from __future__ import annotations

import re

from qwenchat.chat.waiting import wait_line
from qwenchat.cli import app
from qwenchat.cli.errors import run_app


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_line_names_what_is_awaited_and_the_bound():
    assert wait_line(12.4, 126.0) == (
        "waiting for Genie's first token (model load + prompt): 12 s so far; gives up after "
        "126 s (--load-timeout)")


def test_a_hung_genie_is_announced_while_it_is_awaited(bundled_phone, capsys, phone_fault,
                                                       monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    emu, _ = bundled_phone()
    where = ["--connect", emu.address, "--transport", "direct"]
    code, out, err = _cli(capsys, "run", *where, "--max-tokens", "8", "hi")
    assert code == 0 and "waiting for Genie" not in err  # a quick answer: no notice
    phone_fault(emu, "genie-hang-before-first-token")
    code, out, err = _cli(capsys, "run", *where, "--load-timeout", "6", "hi")
    assert code == 124, err
    notices = [line for line in err.splitlines() if line.startswith("waiting for Genie")]
    assert notices, err
    assert re.fullmatch(r"waiting for Genie's first token \(model load \+ prompt\): [3-6] s so "
                        r"far; gives up after [67] s \(--load-timeout\)", notices[0])
    # Said before the bound ended: the timeout's error comes after it.
    assert err.index(notices[0]) < err.index("error:")
    assert "waiting for Genie" not in out
