"""The genie-t2t-run command line: run the shell line in a real POSIX shell against a
stand-in binary that reports what it received, with paths built to break quoting."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qwenchat.genie.command import ANDROID_ADSP_DIRS, GenieInvocation

# Android's shell is mksh; dash stands in for any other POSIX shell an SDK's device might have.
SHELLS = [
    pytest.param(name, marks=pytest.mark.skipif(shutil.which(name) is None, reason=f"no {name}"))
    for name in ("mksh", "sh")
]

NASTY = 'it\'s a $(touch PWNED) `touch PWNED2`; rm -rf ~ & "x" \\ *'


@pytest.fixture
def fake_genie(tmp_path: Path) -> Path:
    """A stand-in for genie-t2t-run that prints argv, cwd and the two library paths."""
    binary = tmp_path / f"bin {NASTY}" / "genie-t2t-run"
    binary.parent.mkdir()
    binary.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "  'ld': os.environ.get('LD_LIBRARY_PATH'), 'adsp': os.environ.get('ADSP_LIBRARY_PATH'),\n"
        "  'pid': os.getpid()}))\n"
    )
    binary.chmod(0o755)
    return binary


def _invocation(tmp_path: Path, binary: Path, **kw) -> GenieInvocation:
    bundle = tmp_path / f"bundle {NASTY}"
    bundle.mkdir(exist_ok=True)
    return GenieInvocation(
        binary=str(binary),
        bundle_dir=str(bundle),
        lib_dir=str(tmp_path / f"lib {NASTY}"),
        skel_dir=str(tmp_path / f"skel;{NASTY}"),
        prompt_file=str(tmp_path / f"tmp/prompt {NASTY}.txt"),
        profile=str(tmp_path / f"tmp/profile {NASTY}.json"),
        **kw,
    )


def _run(shell: str, cmd: str, cwd: Path) -> tuple[str, dict]:
    out = subprocess.run([shell, "-c", cmd], cwd=cwd, capture_output=True, text=True, check=True)
    first, _, rest = out.stdout.partition("\n")
    return first, json.loads(rest)


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_line_delivers_every_path_intact(tmp_path, fake_genie, shell):
    inv = _invocation(
        tmp_path, fake_genie, save=f"/st/{NASTY}", restore=f"/st/r {NASTY}", log="info"
    )
    _, got = _run(shell, inv.shell_command(), tmp_path)
    assert got["argv"] == inv.argv()[1:]
    assert got["argv"][:2] == ["-c", "genie_config.json"]
    assert "--pid" not in got["argv"]  # not on every SDK: the shell says the pid instead
    assert Path(got["cwd"]) == Path(inv.bundle_dir)
    assert got["ld"] == inv.lib_dir
    assert got["adsp"].split(";")[-3:] == list(ANDROID_ADSP_DIRS)
    assert got["adsp"] == ";".join([inv.skel_dir, *ANDROID_ADSP_DIRS])
    # Nothing in the paths was executed by the shell.
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


@pytest.mark.parametrize("shell", SHELLS)
def test_the_pid_the_shell_prints_is_genies(tmp_path, fake_genie, shell):
    inv = _invocation(tmp_path, fake_genie)
    proc = subprocess.Popen([shell, "-c", inv.shell_command()], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    first, _, rest = out.partition("\n")
    # exec: the shell became genie, so the pid it printed is the one a kill must reach.
    assert first == f"qwenchat-genie-pid: {proc.pid}"
    assert json.loads(rest)["pid"] == proc.pid


def test_argv_order_and_optional_flags(tmp_path):
    inv = GenieInvocation(
        binary="/w/bin/genie-t2t-run",
        bundle_dir="/w/bundle",
        lib_dir="/w/lib",
        skel_dir="/w/skel",
        tokens_file="/w/tmp/t.txt",
        pid=False,
    )
    assert inv.argv() == [
        "/w/bin/genie-t2t-run",
        "-c",
        "genie_config.json",
        "--tokens_file",
        "/w/tmp/t.txt",
    ]
    assert inv.shell_command() == (
        'cd /w/bundle && echo "qwenchat-genie-pid: $$" && LD_LIBRARY_PATH=/w/lib '
        "ADSP_LIBRARY_PATH='/w/skel;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp' "
        "exec /w/bin/genie-t2t-run -c genie_config.json --tokens_file /w/tmp/t.txt"
    )


def test_never_takes_prompt_text():
    names = {f.name for f in dataclasses.fields(GenieInvocation)}
    assert not names & {"prompt", "text", "prompt_text"}
    inv = GenieInvocation("/b/g", "/d", "/l", "/s", prompt_file="/d/p.txt")
    assert "-p" not in inv.argv() and "--prompt" not in inv.argv()


def test_refuses_prompt_and_tokens_together_and_bad_log_level():
    with pytest.raises(ValueError):
        GenieInvocation("/b/g", "/d", "/l", "/s", prompt_file="/p", tokens_file="/t")
    with pytest.raises(ValueError):
        GenieInvocation("/b/g", "/d", "/l", "/s", prompt_file="/p", log="debug; reboot")


def test_module_stays_light():
    code = "import sys, qwenchat.genie.command, qwenchat.genie.stream, qwenchat.genie.profile, qwenchat.genie.failures, qwenchat.published; print('pydantic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert out.stdout.strip() == "False"
