"""Fault switches (`qwenchat emulator fault` and the ``phone_fault`` fixture) applied to a
running phone at once, and the phone's command log (`qwenchat emulator log`)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from adb_shell.adb_device import AdbDeviceTcp


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qwenchat", "emulator", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "500"},
    )  # fmt: skip


@pytest.fixture
def emu(emulator_factory):
    return emulator_factory(auth=False, free_mb=64)


@pytest.fixture
def device(emu):
    dev = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=30)
    dev.connect(rsa_keys=None, auth_timeout_s=5, read_timeout_s=30)
    yield dev
    dev.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- faults ----------------------------------------------------------------------------------


def test_fail_command_makes_one_command_fail_until_cleared(emu, phone_fault):
    assert emu.phone.sh("cd /data/local/tmp && echo x > a && mv a b && ls").out == "b\n"
    assert phone_fault(emu, "fail-command", "mv") == "fail-command mv"
    result = emu.phone.sh("cd /data/local/tmp && mv b c; echo $?; ls")
    assert result.out == "1\nb\n"
    assert "mv: SIMULATED failure" in result.err
    assert emu.phone.sh("cd /data/local/tmp && cp b c && ls").out == "b\nc\n"  # others work
    cleared = cli("fault", "clear", "fail-command", "--root", str(emu.root))
    assert cleared.returncode == 0 and "fail-command" in cleared.stdout
    assert emu.phone.sh("cd /data/local/tmp && mv b d && ls").out == "c\nd\n"


def test_fail_command_through_the_cli_applies_to_the_running_phone(emu):
    done = cli("fault", "fail-command", "sha256sum", "--root", str(emu.root))
    assert done.returncode == 0, done.stderr
    result = emu.phone.sh("echo x > /data/local/tmp/f; sha256sum /data/local/tmp/f")
    assert result.exit_code == 1 and result.out == ""
    listed = cli("fault", "list", "--root", str(emu.root))
    assert listed.stdout.splitlines()[0] == "fail-command sha256sum"
    assert cli("fault", "clear", "--root", str(emu.root)).returncode == 0
    assert emu.phone.sh("sha256sum /data/local/tmp/f").exit_code == 0
    assert "no fault is on" in cli("fault", "list", "--root", str(emu.root)).stdout


def test_corrupt_bytes_flips_bytes_of_the_next_push_only(emu, device, phone_fault, tmp_path):
    data = os.urandom(300_000)
    src = tmp_path / "w.bin"
    src.write_bytes(data)
    phone_fault(emu, "corrupt-bytes", 5)
    device.push(str(src), "/data/local/tmp/w1.bin")
    device.push(str(src), "/data/local/tmp/w2.bin")
    landed = emu.phone.host_path("/data/local/tmp/w1.bin").read_bytes()
    assert len(landed) == len(data)
    assert sum(a != b for a, b in zip(landed, data, strict=True)) == 5
    assert emu.phone.sh("sha256sum /data/local/tmp/w2.bin").out.split()[0] == sha256(data)
    assert cli("fault", "list", "--root", str(emu.root)).stdout.startswith("no fault is on")


def test_drop_after_bytes_drops_the_next_push_then_clear(emu, phone_fault, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    dev = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=5)
    dev.connect(rsa_keys=None, auth_timeout_s=5, read_timeout_s=5)
    phone_fault(emu, "drop-after-bytes", 1_000_000)  # on an already open connection
    with pytest.raises(Exception):  # noqa: B017 - adb-shell's error for a dropped link varies
        dev.push(str(src), "/data/local/tmp/big.bin")
    dev.close()
    assert emu.phone.sh("ls /data/local/tmp").out == ""  # no partial file
    assert cli("fault", "clear", "drop-after-bytes", "--root", str(emu.root)).returncode == 0
    dev = AdbDeviceTcp(emu.host, emu.port, default_transport_timeout_s=30)
    dev.connect(rsa_keys=None, auth_timeout_s=5, read_timeout_s=30)
    try:
        dev.push(str(src), "/data/local/tmp/big.bin")
    finally:
        dev.close()
    assert emu.phone.host_path("/data/local/tmp/big.bin").stat().st_size == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fault", "explode"], "unknown fault 'explode'"),
        (["fault", "corrupt-bytes"], "corrupt-bytes needs a value"),
        (["fault", "corrupt-bytes", "many"], "needs a whole number"),
        (["fault", "genie-fail-load", "1"], "takes no value"),
        (["fault", "fail-command", "../../bin/x"], "no command"),
        (["fault", "fail-command", "sh"], "no command 'sh'"),
        (["fault", "fail-command", "kill"], "kill is a builtin of the phone's shell"),
        (["fault", "clear", "explode"], "unknown fault"),
    ],
)
def test_bad_fault_input_is_one_line_and_exit_2(emu, args, message):
    result = cli(*args, "--root", str(emu.root))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_fault_on_a_folder_without_a_phone_says_so(tmp_path):
    result = cli("fault", "genie-fail-load", "--root", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no emulated phone in" in result.stderr


# ---- the command log ---------------------------------------------------------------------------


def test_every_shell_exec_and_sync_request_is_logged(emu, device, tmp_path):
    from qwenchat.emulator.commandlog import read_records

    src = tmp_path / "x.bin"
    src.write_bytes(b"12345")
    device.shell("echo logged-command")
    device.push(str(src), "/data/local/tmp/x.bin")
    device.pull("/data/local/tmp/x.bin", str(tmp_path / "back.bin"))
    device.exec_out("echo via-exec")
    records = read_records(emu.root)
    kinds = [(r["kind"], r.get("request"), r.get("what")) for r in records]
    assert ("shell", None, "echo logged-command") in kinds
    assert ("exec", None, "echo via-exec") in kinds
    assert ("sync", "SEND", "/data/local/tmp/x.bin") in kinds
    assert ("sync", "RECV", "/data/local/tmp/x.bin") in kinds
    ends = [r for r in records if r["kind"] == "end"]
    assert ends and all("exit_code" in r for r in ends)

    shown = cli("log", "--root", str(emu.root), "--tail", "3")
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 3
    as_json = cli("log", "--root", str(emu.root), "--json")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == records


class Follower:
    """`qwenchat emulator log --follow` in its own process, read with a bound: a reader
    thread hands lines over a queue, and ``stop`` ends the process whatever happened (the
    signal asked for, then SIGKILL past a bound): no test leaves it behind, pass or fail."""

    def __init__(self, root, *, ignore_sigint: bool = False) -> None:  # noqa: ANN001
        import queue
        import threading

        def ignored() -> None:  # as a background job of a script starts it
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenchat", "emulator", "log", "--follow", "--root",
             str(root)],  # fmt: skip
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=ignored if ignore_sigint else None,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def line_with(self, text: str, poke, timeout: float = 30) -> str:  # noqa: ANN001
        import queue

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            poke()
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout} s")

    def stop(self, signum: int, bound: float = 10) -> int | None:
        """Send ``signum``; the exit code if it ended within ``bound``, else None (and it is
        killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.reader.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_log_follow_prints_new_requests(emu, device):
    follower = Follower(emu.root)
    try:
        line = follower.line_with("followed-command", lambda: device.shell("echo followed-command"))
        assert "shell" in line
        assert follower.stop(signal.SIGINT) == 0  # Ctrl-C is how --follow ends
    finally:
        follower.kill()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 0)])
def test_log_follow_ends_on_sigterm_and_on_sigint_even_when_started_ignoring_it(
    emu, device, signum, code
):
    """Started the way a script's background job is (SIGINT ignored, which Python keeps):
    Ctrl-C still ends it; SIGTERM ends it with the shell's 128 + 15."""
    follower = Follower(emu.root, ignore_sigint=True)
    try:
        follower.line_with("started-ignoring", lambda: device.shell("echo started-ignoring"))
        assert follower.stop(signum) == code
    finally:
        follower.kill()


def test_log_of_a_folder_without_a_phone_is_one_line(tmp_path):
    result = cli("log", "--root", str(tmp_path / "none"))
    assert result.returncode == 2 and result.stderr.count("error:") == 1
