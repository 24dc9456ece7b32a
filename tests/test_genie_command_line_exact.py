"""The exact genie-t2t-run command line for every option (hand-written expected argv and
shell line), and the option combinations Genie refuses."""

from __future__ import annotations

import pytest

from qwenchat.genie.command import SHELL_PID_MARKER, GenieInvocation

BASE = dict(
    binary="/data/local/tmp/q/genie-t2t-run",
    bundle_dir="/data/local/tmp/q/bundle dir",
    lib_dir="/data/local/tmp/q/lib",
    skel_dir="/data/local/tmp/q/skel",
)


def test_argv_with_every_option_in_order():
    inv = GenieInvocation(
        **BASE, prompt_file="p.txt", profile="prof.json", save="s.bin", restore="r.bin",
        log="info", pid=True,
    )
    assert inv.argv() == [
        "/data/local/tmp/q/genie-t2t-run", "-c", "genie_config.json",
        "--prompt_file", "p.txt", "--profile", "prof.json", "--save", "s.bin",
        "--restore", "r.bin", "--log", "info", "--pid",
    ]


def test_argv_with_a_tokens_file_and_nothing_else():
    inv = GenieInvocation(**BASE, tokens_file="t.txt", config="other.json")
    assert inv.argv() == [
        "/data/local/tmp/q/genie-t2t-run", "-c", "other.json", "--tokens_file", "t.txt",
    ]


def test_shell_line_prints_the_pid_then_execs_with_quoted_paths():
    inv = GenieInvocation(**BASE, prompt_file="my prompt.txt")
    assert inv.shell_command() == (
        "cd '/data/local/tmp/q/bundle dir' && echo \"qwenchat-genie-pid: $$\" && "
        "LD_LIBRARY_PATH=/data/local/tmp/q/lib "
        "ADSP_LIBRARY_PATH='/data/local/tmp/q/skel;/system/lib/rfsa/adsp;"
        "/system/vendor/lib/rfsa/adsp;/dsp' "
        "exec /data/local/tmp/q/genie-t2t-run -c genie_config.json --prompt_file 'my prompt.txt'"
    )
    assert SHELL_PID_MARKER == "qwenchat-genie-pid:"


def test_the_skel_dir_comes_before_androids_own_dsp_dirs():
    assert GenieInvocation(**BASE).adsp_library_path == (
        "/data/local/tmp/q/skel;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp"
    )


def test_a_prompt_file_and_a_tokens_file_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        GenieInvocation(**BASE, prompt_file="p", tokens_file="t")


@pytest.mark.parametrize("level", ["error", "warn", "info", "verbose"])
def test_every_genie_log_level_is_accepted(level):
    assert GenieInvocation(**BASE, log=level).argv()[-2:] == ["--log", level]


@pytest.mark.parametrize("level", ["debug", "INFO", ""])
def test_another_log_level_is_refused(level):
    with pytest.raises(ValueError, match="log level must be"):
        GenieInvocation(**BASE, log=level)
