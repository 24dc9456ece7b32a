"""A damaged store row and a full disk are one line, never a traceback (issue #27).

Failure modes, each tested:
- a bench trial whose result_json is not JSON makes `results show` exit 70 (it must show the
  run, that trial marked damaged, the others intact);
- a chat reply or conversation whose settings_json is not JSON makes `history` exit 70;
- stdout on a full disk (`> /dev/full`) is "unexpected OSError", exit 70, and Python's own
  "Exception ignored" lines after it (it must be one line, exit 1).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from qwenchat.cli import app
from qwenchat.cli.errors import run_app


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _damage(sql: str) -> None:
    from qwenchat.paths import store_path

    with sqlite3.connect(store_path()) as db:
        assert db.execute(sql).rowcount >= 1


def test_damaged_rows_are_shown_as_damaged(bundled_phone, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    emu, _ = bundled_phone(time_scale=0.01)
    where = ["--connect", emu.address, "--transport", "direct"]
    code, out, err = _cli(capsys, "bench", *where, "-p", "128", "-r", "2", "--warmup", "0",
                          "--gen-len", "4", "--cooldown", "0")
    assert code == 0, err
    _damage("UPDATE bench_trials SET result_json = '{bad json' WHERE rowid = "
            "(SELECT min(rowid) FROM bench_trials)")
    code, out, err = _cli(capsys, "results", "show", "last", "-o", "json")
    assert code == 0, err
    trials = json.loads(out)["trials"]
    assert [t["ok"] for t in trials] == [False, True]
    assert "stored result is damaged (not JSON)" in trials[0]["error"]

    code, out, err = _cli(capsys, "run", *where, "--max-tokens", "8", "hello")
    assert code == 0, err
    _damage("UPDATE chat_replies SET settings_json = '{bad'")
    _damage("UPDATE chat_conversations SET settings_json = '[1, 2'")
    code, out, err = _cli(capsys, "history", "last")
    assert code == 0, err
    assert "hello" in out
    code, out, err = _cli(capsys, "history", "last", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["settings"] == {"damaged": "the stored settings are not JSON"}
    assert data["messages"][1]["generations"][0]["settings"] == data["settings"]


def test_stdout_on_a_full_disk_is_one_line(tmp_path):
    env = dict(os.environ, QWENCHAT_HOME=str(tmp_path / "home"))
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "qwenchat", "models"], stdout=full,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: cannot write the output: No space left on device",
        "hint: Free some space, or send the output elsewhere.",
    ]
