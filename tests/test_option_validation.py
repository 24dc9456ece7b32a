"""Bad option values are refused before anything runs (issue #27): one line naming the
option, exit 2 (usage), never a wait, a wrong run or a traceback.

The kinds (one mechanism each, cli/checked.py): numbers that must be finite and in range
(nan, inf, negative, beyond a physical bound: --max-temp -300 waited forever for a phone to
cool below absolute zero), counts, phone paths (a newline in --device-dir), HOST:PORT (an
empty --connect was silently ignored, 'a:1:b' garbled), and options that contradict each
other. Each case below failed on the code before this change (accepted, or exit 1/70).
"""

from __future__ import annotations

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

CASES = [
    (["bench", "--cooldown", "nan"], "--cooldown 'nan' is neither 'auto' nor a number of seconds"),
    (["bench", "--cooldown", "inf"], "--cooldown 'inf' is neither 'auto' nor a number of seconds"),
    (["bench", "--max-temp", "-300"], "'--max-temp': must be a number of °C at least 25"),
    (["bench", "--max-temp", "nan"], "'--max-temp': must be a number of °C at least 25"),
    (["bench", "--cooldown-max-wait", "-1"], "'--cooldown-max-wait': must be a number of seconds"),
    (["bench", "--seed", "-5"], "'--seed': must be from 0 to 4294967295, not -5"),
    (["bench", "--show", "last", "--resume"], "--show prints a stored run; it cannot be "
                                              "combined with --resume"),
    (["bench", "--json", "-o", "csv"], "--json and -o csv ask for two formats"),
    (["results", "list", "-n", "0"], "0 is not in the range x>=1"),
    (["results", "list", "-n", "-5"], "-5 is not in the range x>=1"),
    (["connect", "127.0.0.1:5555:extra"], "bad address '127.0.0.1:5555:extra': more than one ':'"),
    (["connect", "--auth-timeout", "-1", "127.0.0.1:9"], "'--auth-timeout': must be a number of "
                                                        "seconds above 0"),
    (["doctor", "--auth-timeout", "nan"], "'--auth-timeout': must be a number of seconds above 0"),
    (["clean", "--auth-timeout", "-5"], "'--auth-timeout': must be a number of seconds above 0"),
    (["run", "--connect", "", "hi"], "'--connect': empty address"),
    (["doctor", "--device-dir", "/data/local/tmp/q\ntouch /data/local/tmp/PWNED"],
     "'--device-dir': must not hold control characters ('\\n' found)"),
    (["push-assets", "--bundle", "/nonexistent", "--top-k", "0"], "--top-k 0: must be at least 1"),
    (["push-assets", "--bundle", "/nonexistent", "--chipset", "SM8750"],
     "--chipset only chooses what --hub / --hub-job fetch"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_bad_option_is_one_line_and_exit_2(capsys, monkeypatch, args, message):
    monkeypatch.setenv("COLUMNS", "250")
    code = run_app(app, args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in err + out


def test_compare_refuses_a_run_with_itself(bundled_phone, capsys):
    emu, _ = bundled_phone(time_scale=0.01)
    code = run_app(app, ["bench", "--connect", emu.address, "--transport", "direct", "-p", "128",
                         "-r", "1", "--warmup", "0", "--gen-len", "4", "--cooldown", "0"])
    assert code == 0
    capsys.readouterr()
    code = run_app(app, ["results", "compare", "last", "last"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: last and last are the same run (")


EMULATOR_CASES = [
    (["--port", "-1"], "'--port': must be from 0 to 65535, not -1"),
    (["--port", "70000"], "'--port': must be from 0 to 65535, not 70000"),
    (["--port", "0", "--time-scale", "nan"], "'--time-scale': must be a number above 0"),
    (["--port", "0", "--free-mb", "0"], "'--free-mb': must be at least 1, not 0"),
    (["--port", "0", "--free-mb", "-1"], "'--free-mb': must be at least 1, not -1"),
    (["--port", "0", "--drop-after-bytes", "-5"], "'--drop-after-bytes': must be at least 1"),
]


@pytest.mark.parametrize("args, message", EMULATOR_CASES,
                         ids=[" ".join(c[0]) for c in EMULATOR_CASES])
def test_emulator_start_names_the_one_bad_option(capsys, tmp_path, args, message):
    code = run_app(app, ["emulator", "start", "--root", str(tmp_path / "r"), *args])
    out, err = capsys.readouterr()
    assert code == 2 and message in err
    assert "--free-mb" not in message or "--port" not in err.split("Error:")[-1]
    assert not (tmp_path / "r").exists()  # nothing started


def test_emulator_paths_in_the_way_are_one_line(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    for args, line in [
        (["emulator", "start", "--root", str(tmp_path / "afile" / "sub"), "--port", "0"],
         f"error: --root {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a "
         "folder"),
        (["emulator", "make-bundle", str(tmp_path / "afile" / "b")],
         f"error: make-bundle {tmp_path / 'afile' / 'b'}: {tmp_path / 'afile'} is a file, not "
         "a folder"),
        (["emulator", "authorize", "--root", str(tmp_path / "none")],
         f"error: no emulated phone at {tmp_path / 'none'}"),
    ]:
        code = run_app(app, args)
        out, err = capsys.readouterr()
        assert code == 2 and err.splitlines()[0] == line, err
