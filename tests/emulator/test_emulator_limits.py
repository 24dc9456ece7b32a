"""Issue 31, item 9: each emulated phone has the memory and process limits a phone's shell
user meets, so a runaway command on the phone cannot take the host down.

Failure modes, each with its test: a phone command allocating far past the phone's memory
(the host's memory is the only bound); a fork loop on the phone (the host's process table is
the only bound); a phone's control group left behind after it stopped. The limits are made
small for the test (the emulator's own switches); oracles are the phone's shell (its exit
code, what it could start) and the host's cgroup filesystem.
"""

from __future__ import annotations

import pytest


def sh(emu, command: str):
    return emu.phone.sh(command, timeout=120)


@pytest.fixture
def small_phone(emulator_factory, monkeypatch):
    monkeypatch.setenv("QWENCHAT_PHONE_MEMORY_MB", "96")
    monkeypatch.setenv("QWENCHAT_PHONE_PIDS_MAX", "64")
    emu = emulator_factory(auth=False)
    limits = emu.server.phone.sandbox.limits
    if not limits.enforced:
        pytest.skip(f"per-phone limits cannot be made here: {limits.not_enforced}")
    return emu


def test_an_allocation_past_the_phones_memory_ends_that_command_not_the_host(small_phone):
    # sort holds its whole input: 400 MB of one line, four times the phone's memory.
    result = sh(small_phone, "head -c 400000000 /dev/zero | sort > /dev/null; echo code=$?")
    assert "code=0" not in result.out, result
    assert sh(small_phone, "echo still here").out == "still here\n"  # the phone lives on


def test_a_fork_loop_on_the_phone_stops_at_its_process_limit(small_phone):
    # The phone's shell (mksh) gives up at the first fork the kernel refuses: EAGAIN, as on a
    # phone whose process table is full, after fewer than the limit's processes.
    loop = "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); echo $i; done"
    result = sh(small_phone, loop)
    assert result.exit_code != 0 and "Resource temporarily unavailable" in result.err, result
    started = int(result.out.split()[-1])
    assert 0 < started < 64, result  # the phone's limit, not the host's
    sh(small_phone, "kill $(pidof sleep) 2>/dev/null; true")
    assert sh(small_phone, "echo still here").out == "still here\n"


def test_a_stopped_phone_leaves_no_control_group(small_phone):
    groups = list(small_phone.server.phone.sandbox.limits.groups)
    assert groups and all(g.is_dir() for g in groups)
    small_phone.stop()
    assert not any(g.exists() for g in groups)
