"""`qwenchat fetch` and `push-assets --hub` through the real CLI -- in-process, piped, and on a
pseudo-terminal -- against the recorded store on 127.0.0.1 (see test_hub_fetch.py)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from dataclasses import replace

import pytest

pytest.importorskip("qai_hub_models_cli", reason="pip install 'qwenchat[hub]'")

from test_hub_fetch import BINS, ELITE_URL, QAIRT_CTX, RecordedStore  # noqa: E402

from qwenchat.cli import app  # noqa: E402
from qwenchat.cli.errors import run_app  # noqa: E402
from qwenchat.hub.transport import STORE_ENV  # noqa: E402
from qwenchat.models.registry import get_model  # noqa: E402

ZIP = ELITE_URL.rsplit("/", 1)[1]
QWEN2 = get_model("qwen2-7b-instruct")
LLAMA = replace(
    QWEN2,
    name="llama-v2-7b-chat",
    display_name="Llama-v2-7B-Chat",
    hub=replace(QWEN2.hub, model_id="llama_v2_7b_chat", downloadable=False),
    aliases=(),
)


@pytest.fixture
def store(monkeypatch):
    s = RecordedStore()
    monkeypatch.setenv(STORE_ENV, s.base)
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QWENCHAT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_json_prints_the_bundle(cache, store, capsys):
    assert run_app(app, ["fetch", "--chipset", "SM8750", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bundle"] == str(
        cache / "hub" / "qwen2_7b_instruct" / "qualcomm-snapdragon-8-elite-for-galaxy"
        / "qnn_context_binary-w4a16" / "bundle"
    )  # fmt: skip
    assert [f["name"] for f in out["files"]] == BINS
    assert (out["runtime"], out["qairt"]) == ("qnn_context_binary", QAIRT_CTX)


def test_fetch_piped_prints_plain_lines_and_no_blank_line(cache, store):
    store.delay = 0.02  # eleven 16 KiB pieces: the lines have something to count
    run = subprocess.run(
        [sys.executable, "-m", "qwenchat", "fetch", "--chipset", "SM8750"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    bundle = (
        cache / "hub" / "qwen2_7b_instruct" / "qualcomm-snapdragon-8-elite-for-galaxy"
        / "qnn_context_binary-w4a16" / "bundle"
    )  # fmt: skip
    assert run.stdout == f"{bundle}\n"  # the path alone: no blank line before it
    assert "\x1b" not in run.stderr  # no terminal codes in a pipe
    lines = run.stderr.splitlines()
    assert "" not in lines
    assert lines[0] == f"downloading {ZIP} (165.2 kB)"
    assert re.fullmatch(rf"downloaded {re.escape(ZIP)}: 165\.2 kB in \d+ s \([\d.]+ kB/s\)", lines[-1])
    middle = [
        re.fullmatch(
            rf"{re.escape(ZIP)}: (\d+)% \([\d.]+ kB of 165\.2 kB\), [\d.]+ [kM]B/s, ETA \d+ s", line
        )
        for line in lines[1:-1]
    ]
    assert all(middle), lines
    percents = [int(m.group(1)) for m in middle]
    assert len(percents) >= 3 and percents == sorted(set(percents)) and percents[-1] < 100


def test_fetch_on_a_terminal_shows_a_live_bar(cache, store):
    store.delay = 0.1  # about a second: Rich redraws ten times a second
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, cols
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenchat", "fetch", "--chipset", "SM8750"],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        assert proc.wait(timeout=60) == 0
    text = seen.decode("utf-8", "replace")
    assert "\x1b[" in text and "━" in text  # a drawn, redrawn bar
    assert re.search(r"[\d.]+/165\.2 kB", text)  # bytes done / total
    assert re.search(r"[\d.]+ kB/s", text)  # rate
    assert f"downloaded {ZIP}: 165.2 kB in" in text
    assert text.rstrip().endswith("bundle")


def test_model_whose_binaries_are_not_shared_points_to_hub_job(cache, store, monkeypatch, capsys):
    monkeypatch.setattr("qwenchat.models.registry.MODELS", (QWEN2, LLAMA))
    code = run_app(app, ["fetch", "--model", "llama-v2-7b-chat", "--chipset", "SM8750"])
    err = capsys.readouterr().err
    assert code == 2
    first, hint = " ".join(err.split()).split(" hint: ")
    assert first == (
        "error: Llama-v2-7B-Chat's context binaries are not published for download (AI Hub "
        "restricts sharing this model); export them with your own AI Hub account"
    )
    assert "qai-hub-models export llama_v2_7b_chat" in hint and "--hub-job JOB_ID" in hint
    assert "Traceback" not in err
    assert store.requests == []  # said before asking the store anything


def test_model_not_shared_is_said_before_looking_for_a_phone(cache, store, monkeypatch, capsys):
    # No --chipset and no phone anywhere: the model's answer comes first, not "no phone".
    monkeypatch.setattr("qwenchat.models.registry.MODELS", (QWEN2, LLAMA))
    assert run_app(app, ["fetch", "--model", "llama_v2_7b_chat"]) == 2
    assert "Llama-v2-7B-Chat's context binaries are not published" in capsys.readouterr().err


def test_unknown_model_is_a_usage_error(cache, store, capsys):
    assert run_app(app, ["fetch", "--model", "gpt-5", "--chipset", "SM8750"]) == 2
    assert "unknown model 'gpt-5'" in capsys.readouterr().err


def test_fetch_unsupported_chip_is_one_red_line(cache, store, capsys):
    assert run_app(app, ["fetch", "--chipset", "SM8550"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and "8 Elite for Galaxy" in err


def test_push_assets_needs_a_bundle_or_hub(capsys):
    assert run_app(app, ["push-assets"]) == 2
    assert "--hub" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--help"], ["fetch", "--help"]])
def test_help_imports_no_hub_network_or_rendering_library(args):
    code = (
        "import sys\n"
        "from qwenchat.cli import app\n"
        "from qwenchat.cli.errors import run_app\n"
        f"run_app(app, {args!r})\n"
        "heavy = ('rich', 'qai_hub', 'qai_hub_models_cli', 'requests', 'urllib3', 'google.protobuf')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
