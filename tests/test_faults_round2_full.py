"""Issue 31, item 2: a full phone is its own failure on every command, never a lost one.

Failure modes, each with its test: a chat turn on a full phone (either engine) stored with
stop reason "device lost" and the hint "check the cable", the chat then treating the phone as
gone; a bench on a full phone stopping with "the phone was lost", exit 75.

The phone is filled by a real write on it (``cat /dev/zero`` until the kernel says ENOSPC, on
/data limited by the emulator's ext4 image); oracles are the stop reasons and texts as the
user sees them (hand-written), the exit code, and the phone's own storage.
"""

from __future__ import annotations

import pytest

from qwenchat.chat.session import SamplerSettings, StopReason, open_chat_session
from qwenchat.cli import app
from qwenchat.cli.errors import run_app

FILLER = "/data/local/tmp/filler"


def fill(dev) -> None:
    """Write until the kernel refuses; blocks freed meanwhile (a file the phone removed) are
    taken by the next filler."""
    for n in range(5):
        dev.shell(f"cat /dev/zero > {FILLER}-{n}", timeout=120)
        free = dev.shell("df -k /data | tail -n 1").text.split()
        if free[3] == "0":  # toybox df: Filesystem 1K-blocks Used Available Use% Mounted
            return
    raise AssertionError(f"the phone's /data does not fill up: {free}")


def unfill(dev) -> None:
    assert dev.shell(f"rm -f {FILLER}-*").ok


@pytest.mark.parametrize("engine", ["process", "session"])
def test_a_chat_turn_on_a_full_phone_says_the_phone_is_full(bundled_phone, engine):
    emu, dev = bundled_phone(free_mb=64)
    session = open_chat_session(dev, engine=engine, settings=SamplerSettings(max_tokens=8))
    try:
        first = session.send("hello")
        assert first.stop is not StopReason.FAILED
        fill(dev)
        full = session.send("and now?")
        assert full.stop is StopReason.FAILED  # not "device lost"
        assert full.error.startswith("the phone's storage is full (No space left on device"), (
            full.error
        )
        assert "`qwenchat clean`" in full.error_hint and "cable" not in full.error_hint
        # What to remove: the phone's biggest entries, the filler first (du on the phone).
        assert f"Biggest now: {FILLER}-0 " in full.error_hint, full.error_hint
        assert not session.lost  # the phone is right there: no reconnect
        unfill(dev)
        after = session.send("room again")
        assert after.stop is not StopReason.FAILED, after.error
    finally:
        session.end()


def test_a_bench_on_a_full_phone_says_the_phone_is_full(bundled_phone, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    emu, dev = bundled_phone(free_mb=64, time_scale=0.01)
    fill(dev)
    code = run_app(app, [
        "bench", "--connect", emu.address, "--transport", "direct", "--engine", "process",
        "-p", "64", "-r", "2", "--gen-len", "4", "--warmup", "0", "--cooldown", "0", "--seed", "7",
    ])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 1, err  # a refused action, not 75 ("the phone was lost")
    assert "storage is full" in err and "lost" not in err, err
    assert "qwenchat clean" in err
    assert f"Biggest now: {FILLER}-0 " in err, err
