"""No command writes over what it must not (issue #27): ``results export -f``, ``doctor
--report`` and ``/save``.

Failure modes, each tested:
- the store (qwenchat.db) is named as the output: it is replaced and every chat and run is
  gone (must be refused, exit 1, --force or not);
- an existing unrelated file is replaced silently (must be left as it is without --force,
  replaced with it, or after a yes in the chat);
- an empty name or a folder is a traceback, or is found only after the whole doctor ran
  (must be one line, exit 2, before the phone is asked anything);
- a half-written file is left behind (the write is atomic: no temporary file remains).
"""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _store():
    from qwenchat.paths import store_path
    from qwenchat.store import open_store

    open_store().close()  # create it as any command would
    return store_path()


def _tables(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(r[0] for r in db.execute("select name from sqlite_master where type='table'"))


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_results_export_never_writes_over_the_store(capsys, force):
    store = _store()
    before = _tables(store)
    code, out, err = _cli(capsys, "results", "export", "-f", str(store), *force, "last")
    assert code == 1
    assert err.startswith(f"error: --file {store}: that is qwenchat's own data")
    assert "Traceback" not in err and _tables(store) == before


def test_export_replaces_an_existing_file_only_with_force(bundled_phone, capsys, tmp_path):
    emu, _ = bundled_phone()
    where = ["--connect", emu.address, "--transport", "direct"]
    code, out, err = _cli(capsys, "bench", *where, "-p", "128", "-r", "1", "--warmup", "0",
                          "--gen-len", "4", "--cooldown", "0")
    assert code == 0, err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "keep.txt"
    target.write_text("keep\n")
    code, out, err = _cli(capsys, "results", "export", "-f", str(target), "last")
    assert code == 1 and "the file exists; it was left as it is" in err
    assert "--force" in err and target.read_text() == "keep\n"
    code, out, err = _cli(capsys, "results", "export", "-f", str(target), "--force", "last")
    assert code == 0, err
    assert json.loads(target.read_text())["model"] == "qwen2-7b-instruct"
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]  # no temporary file


@pytest.mark.parametrize(
    "name, code, message",
    [
        ("", 2, "error: --report needs a file name, not an empty one"),
        ("{tmp}", 2, "error: --report {tmp}: it is a folder"),
        ("{store}", 1, "error: --report {store}: that is qwenchat's own data"),
        ("{tmp}/old.json", 1, "error: --report {tmp}/old.json: the file exists"),
    ],
)
def test_doctor_report_names_are_checked_before_the_phone(capsys, tmp_path, name, code,
                                                           message):
    store = _store()
    (tmp_path / "old.json").write_text("{}")
    fill = {"tmp": str(tmp_path), "store": str(store)}
    # No phone at this address: a check that came after the doctor would say so instead.
    got, out, err = _cli(capsys, "doctor", "--connect", "127.0.0.1:9", "--report",
                         name.format(**fill))
    assert got == code
    assert err.startswith(message.format(**fill))
    assert "Traceback" not in err and "cannot reach" not in err + out
    assert (tmp_path / "old.json").read_text() == "{}"


def test_chat_save_asks_before_replacing_and_never_writes_over_the_store(bundled_phone,
                                                                          tmp_path):
    from qwenchat.chat.lines import LineReader
    from qwenchat.chat.repl import Repl
    from qwenchat.chat.session import SamplerSettings, open_chat_session

    store = _store()
    before = _tables(store)
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    lines = iter(["hello", f"/save {other}", "", f"/save {other}", "y", f"/save {store}"])

    def fake_input(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    _, dev = bundled_phone()
    session = open_chat_session(dev, settings=SamplerSettings(max_tokens=16))
    out = io.StringIO()
    assert Repl(session, reader=LineReader(fake_input), out=out).run() == 0
    errors = [line for line in out.getvalue().splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: /save {other}: the file exists; it was left as it is",  # Enter keeps it
        f"error: /save {store}: that is qwenchat's own data (its store or cache); it is "
        "never written over",
    ]
    assert json.loads(other.read_text())["messages"][0]["content"] == "hello"  # after the y
    assert _tables(store) == before
