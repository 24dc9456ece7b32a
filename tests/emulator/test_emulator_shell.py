"""The emulated phone's shell, run through ShellSession directly (no ADB): quoting,
pipelines, redirects, exit codes, toybox messages, free space, processes, virtual files
and the launch of the simulated genie-t2t-run (a stand-in module here)."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from qwenchat.emulator import SIMULATED_MODEL
from qwenchat.emulator.config import EmulatorConfig
from qwenchat.emulator.phone import Phone, ShellSession

GENIE = "/data/local/tmp/qwenchat/bin/genie-t2t-run"
MARKER = "#!/system/bin/sh\n# qwenchat-emulator: simulated genie-t2t-run\nexit 1\n"

STAND_IN = textwrap.dedent(
    """
    import os, sys, time
    args = sys.argv[1:]
    if "--pid" in args:
        print(f"genie-t2t-run pid: {os.getpid()}", flush=True)
    if "--env" in args:
        initial = open("/proc/self/environ", "rb").read().split(b"\\0")
        print("LD=" + os.environ.get("LD_LIBRARY_PATH", "-"), flush=True)
        print("LD_AT_EXEC=" + str(any(e.startswith(b"LD_LIBRARY_PATH=") for e in initial)))
        print("CWD=" + os.environ.get("QWENCHAT_EMU_CWD", "-"))
        print("ROOT=" + os.environ.get("QWENCHAT_EMU_ROOT", "-"))
        print("HOSTCWD=" + os.getcwd())
        print("ARGV0=" + sys.argv[0])
    if "--tokens" in args:
        for tok in ["Hel", "lo", " world"]:
            sys.stdout.write(tok)
            sys.stdout.flush()
            time.sleep(0.05)
        print()
    if "--stderr" in args:
        print("Failed to create the dialog.", file=sys.stderr, flush=True)
    if "--sleep" in args:
        time.sleep(float(args[args.index("--sleep") + 1]))
    if "--exit" in args:
        sys.exit(int(args[args.index("--exit") + 1]))
    """
)


@pytest.fixture
def phone(tmp_path) -> Phone:
    return Phone(EmulatorConfig(root=tmp_path / "emu", free_mb=64, time_scale=0.01))


@pytest.fixture
def genie(tmp_path, phone, monkeypatch) -> Phone:
    """The phone with an executable genie-t2t-run marker file and a stand-in module."""
    mod_dir = tmp_path / "standin"
    mod_dir.mkdir()
    (mod_dir / "fake_genie_standin.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", str(mod_dir))
    monkeypatch.setenv("QWENCHAT_EMU_GENIE_MODULE", "fake_genie_standin")
    exe = phone.config.fs_root / GENIE.lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text(MARKER)
    exe.chmod(0o755)
    return phone


def sh(phone: Phone, command: str | None, stdin: bytes = b"") -> tuple[int, str, str]:
    out: list[bytes] = []
    err: list[bytes] = []
    session = ShellSession(phone, command, stdout=out.append, stderr=err.append)
    if stdin:
        session.feed_stdin(stdin)
    session.close_stdin()
    rc = session.run()
    return rc, b"".join(out).decode(), b"".join(err).decode()


class Background:
    """A session running in a thread, as adbd runs it, with output collected live."""

    def __init__(self, phone: Phone, command: str) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.session = ShellSession(phone, command, stdout=self.out.extend, stderr=self.err.extend)
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.session.close_stdin()
        self.rc = self.session.run()

    def wait_for(self, needle: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            assert time.monotonic() < deadline, f"no {needle!r} in {bytes(self.out)!r}"
            time.sleep(0.01)

    def join(self, timeout: float = 20) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        return self.rc


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0: look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_until(cond, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.02)


# ---- language ------------------------------------------------------------------------------


def test_quoting_and_expansion(phone):
    rc, out, err = sh(
        phone,
        """X='a  b'; echo 'single $X' "double $X" ${X} back\\ slash "\\$X" "${UNSET:-dflt}" ''""",
    )
    assert (rc, err) == (0, "")
    assert out == "single $X double a  b a b back slash $X dflt \n"


def test_word_splitting_only_unquoted(phone):
    _, out, _ = sh(
        phone,
        'V="one two  three"; for w in $V; do echo "<$w>"; done; for w in "$V"; do echo "[$w]"; done',
    )
    assert out == "<one>\n<two>\n<three>\n[one two  three]\n"


def test_exit_codes_and_lists(phone):
    assert sh(phone, "false; echo $?")[1] == "1\n"
    assert sh(phone, "true && echo y || echo n; false && echo y || echo n")[1] == "y\nn\n"
    assert sh(phone, "exit 7")[0] == 7
    assert sh(phone, "! false")[0] == 0
    assert sh(phone, "sh -c 'exit 3'; echo $?")[1] == "3\n"
    assert sh(phone, "exit 300")[0] == 300 & 0xFF


def test_stderr_is_separate_and_redirectable(phone):
    rc, out, err = sh(phone, "echo out; echo err >&2; ls /nope")
    assert (rc, out) == (1, "out\n")
    assert err == "err\nls: /nope: No such file or directory\n"
    rc, out, err = sh(phone, "ls /nope 2>&1")
    assert (out, err) == ("ls: /nope: No such file or directory\n", "")
    assert sh(phone, "ls /nope 2>/dev/null")[2] == ""


def test_file_redirects(phone):
    rc, out, err = sh(
        phone,
        "cd /data/local/tmp; echo one > f; echo two >> f; cat < f; wc -l < f; "
        "cat f nope > both 2>&1; cat both",
    )
    assert out == "one\ntwo\n2\none\ntwo\ncat: nope: No such file or directory\n"
    assert (phone.config.fs_root / "data/local/tmp/f").read_text() == "one\ntwo\n"


def test_pipelines(phone):
    assert sh(phone, "printf 'b\\na\\nc\\n' | sort | head -n 2")[1] == "a\nb\n"
    assert sh(phone, "echo hello | tr a-z A-Z | cut -c 1-4")[1] == "HELL\n"
    assert sh(phone, "echo x | false")[0] == 1
    # the last stage runs in this shell, as in ksh
    assert sh(phone, "echo val | read v; echo $v")[1] == "val\n"
    # a writer whose reader stops early does not hang the pipeline
    big = phone.config.fs_root / "data/local/tmp/big"
    big.write_bytes(b"line\n" * 200_000)
    phone.rescan_usage()
    assert sh(phone, "cat /data/local/tmp/big | head -n 1")[1] == "line\n"


def test_command_substitution_and_arith(phone):
    assert sh(phone, 'n=$(echo 4); echo "[$n]" $((n * 2 + 1)) `echo tick`')[1] == "[4] 9 tick\n"


def test_control_flow_and_multiline(phone):
    script = "if [ -d /sdcard ]; then\n  echo dir\nelse\n  echo none\nfi\ni=0\nwhile [ $i -lt 3 ]; do i=$((i+1)); done; echo $i # comment\n"
    assert sh(phone, script)[1] == "dir\n3\n"


def test_globs_sorted_inside_sandbox(phone):
    rc, out, _ = sh(
        phone,
        "cd /data/local/tmp; touch b a c .h; echo *; echo /data/local/tmp/[ab]; echo nomatch*",
    )
    assert out == "a b c\n/data/local/tmp/a /data/local/tmp/b\nnomatch*\n"


def test_unknown_command_and_exec_errors(phone):
    assert sh(phone, "foo") == (127, "", "/system/bin/sh: foo: inaccessible or not found\n")
    tmp = phone.config.fs_root / "data/local/tmp"
    (tmp / "noexec").write_text("#!/system/bin/sh\necho hi\n")
    (tmp / "binary").write_bytes(b"\x7fELF\x02\x01\x01")
    (tmp / "binary").chmod(0o755)
    assert sh(phone, "/data/local/tmp/missing")[0] == 127
    rc, _, err = sh(phone, "cd /data/local/tmp; ./noexec")
    assert rc == 126 and "Permission denied" in err
    rc, _, err = sh(phone, "cd /data/local/tmp; chmod +x noexec; ./noexec; ./binary")
    assert rc == 126 and "Exec format error" in err
    assert sh(phone, "cd /data/local/tmp; ./noexec")[1] == "hi\n"


def test_interactive_reads_lines_from_stdin(phone):
    rc, out, _ = sh(
        phone, None, b"cd /data\npwd\nif true; then\necho multi\nfi\nexit 3\necho never\n"
    )
    assert (rc, out) == (3, "/data\nmulti\n")


def test_stdin_reaches_commands(phone):
    assert sh(phone, "cat | wc -c", b"12345")[1] == "5\n"


# ---- toybox --------------------------------------------------------------------------------


def test_file_commands(phone):
    script = """
    cd /data/local/tmp
    mkdir -p a/b/c && echo data > a/b/c/f && ls a/b/c
    cp a/b/c/f g && mv g h && ls
    stat -c '%s %a %n' h
    chmod 700 h && stat -c %a h
    ln -s h link && cat link && ls -l link | grep -c -- '-> h'
    rm link h && rm -r a && ls
    rmdir nope
    """
    rc, out, err = sh(phone, textwrap.dedent(script))
    assert out == "f\na\nh\n5 644 h\n700\ndata\n1\n"
    assert err == "rmdir: nope: No such file or directory\n" and rc == 1


def test_hashes_and_counts(phone):
    data = os.urandom(100_000)
    (phone.config.fs_root / "data/local/tmp/blob").write_bytes(data)
    phone.rescan_usage()
    _, out, _ = sh(
        phone, "cd /data/local/tmp; sha256sum blob; md5sum blob; wc -c blob; head -c 3 blob | wc -c"
    )
    assert out.splitlines() == [
        f"{hashlib.sha256(data).hexdigest()}  blob",
        f"{hashlib.md5(data).hexdigest()}  blob",
        "100000 blob",
        "3",
    ]
    assert sh(phone, "sha256sum /nope") == (1, "", "sha256sum: /nope: No such file or directory\n")


def test_grep_find_head_tail(phone):
    script = "cd /data/local/tmp; printf 'a1\\nb2\\na3\\n' > f; grep a f; grep -c a f; grep -v a f; grep -qE 'b[0-9]' f && echo q; tail -n 1 f; head -n 1 f; find . -name 'f'"
    assert sh(phone, script)[1] == "a1\na3\n2\nb2\nq\na3\na1\n./f\n"
    assert sh(phone, "echo x | grep y")[0] == 1


def test_system_commands(phone):
    assert sh(phone, "uname -m; whoami; nproc; pwd; getprop ro.soc.model; getprop ro.kernel.qemu")[
        1
    ] == ("aarch64\nshell\n8\n/\nSM8750\n\n")
    assert sh(phone, "getprop ro.product.model")[1] == SIMULATED_MODEL + "\n"
    rc, out, err = sh(phone, "setprop ro.x 1")
    assert rc == 1 and "Failed to set property" in err
    assert sh(phone, "id")[1].startswith("uid=2000(shell)")
    assert sh(phone, "which ls; command -v cd; date +%s")[1].split("\n")[:2] == [
        "/system/bin/ls",
        "cd",
    ]
    assert (
        sh(phone, "settings get global low_power; cmd power is-power-save-mode")[1] == "0\nfalse\n"
    )


def test_props(phone):
    props = phone.props()
    assert props["ro.board.platform"] == "sun" and props["ro.build.version.sdk"] == "35"
    assert props["ro.qwenchat.simulated"] == "1" and "ro.kernel.qemu" not in props
    assert "SIMULATED" in props["ro.build.fingerprint"]
    assert props["ro.serialno"] == phone.config.serial


# ---- free space ----------------------------------------------------------------------------


def test_writes_fail_when_data_is_full(tmp_path):
    phone = Phone(EmulatorConfig(root=tmp_path / "small", free_mb=1))
    rc, _, err = sh(phone, "cd /data/local/tmp; printf '%2000000s' x > big")
    assert rc == 1 and "No space left on device" in err
    free = phone.free_bytes()
    assert free == 1024 * 1024  # the write was refused whole; the file exists, empty
    assert sh(phone, "stat -c %s /data/local/tmp/big")[1] == "0\n"
    _, out, _ = sh(phone, "df -k /data/local/tmp")
    assert out.splitlines()[1].split()[3] == str(free // 1024)
    rc, _, _ = sh(phone, "rm /data/local/tmp/big")
    assert rc == 0 and phone.free_bytes() == 1024 * 1024
    assert sh(phone, "cd /data/local/tmp; printf '%1000s' x > ok; stat -c %s ok")[1] == "1000\n"
    assert phone.free_bytes() == 1024 * 1024 - 1000


def test_note_written_is_what_df_reports(phone):
    before = phone.free_bytes()
    phone.note_written(5 * 1024 * 1024)
    assert phone.free_bytes() == before - 5 * 1024 * 1024


# ---- virtual files -------------------------------------------------------------------------


def test_virtual_files(phone):
    _, out, _ = sh(phone, "cat /proc/meminfo")
    assert f"MemTotal:       {phone.config.ram_mb * 1024:>8} kB" in out
    rc, out, err = sh(phone, "cat /sys/class/thermal/thermal_zone*/temp")
    temps = out.split()
    assert rc == 1 and len(temps) == 7 and all(20_000 < int(t) < 100_000 for t in temps)
    assert err == "cat: /sys/class/thermal/thermal_zone3/temp: Invalid argument\n"
    assert sh(phone, "cat /sys/class/thermal/thermal_zone4/type")[1] == "nsphvx-0\n"
    assert (
        sh(
            phone, "cat /sys/class/power_supply/battery/capacity /sys/class/power_supply/usb/online"
        )[1]
        == "87\n1\n"
    )
    _, out, _ = sh(phone, "dumpsys battery")
    assert "level: 87" in out and "USB powered: true" in out
    rc, _, err = sh(phone, "echo 1 > /proc/meminfo")
    assert rc == 1 and "Permission denied" in err


def test_thermal_follows_the_model(phone):
    phone.thermal.add_busy(1.0)  # 100 emulated seconds at time scale 0.01
    temp = int(sh(phone, "cat /sys/class/thermal/thermal_zone4/temp")[1])
    assert temp > 40_000


# ---- processes -----------------------------------------------------------------------------


def test_ps_and_kill_are_per_phone(tmp_path):
    a = Phone(EmulatorConfig(root=tmp_path / "a"))
    b = Phone(EmulatorConfig(root=tmp_path / "b"))
    job = Background(a, "sleep 30 & echo $!; wait")
    job.wait_for(b"\n")
    pid = int(job.out.decode())
    assert str(pid) in sh(a, "ps -A -o pid,name")[1]
    assert str(pid) not in sh(b, "ps -A -o pid,name")[1]
    assert sh(b, f"kill {pid}") == (1, "", f"kill: pid {pid}: No such process\n")
    assert sh(a, f"kill -0 {os.getpid()}")[0] == 1  # a host process is never ours
    assert sh(a, f"kill -s TERM {pid}")[0] == 0
    assert job.join() in (0, 143)
    assert str(pid) not in sh(a, "ps -A -o pid")[1]


def test_sleep_is_interrupted_by_hangup(phone):
    job = Background(phone, "echo start; sleep 30; echo never")
    job.wait_for(b"start")
    t0 = time.monotonic()
    job.session.hangup()
    assert job.join(5) == 129
    assert time.monotonic() - t0 < 5
    assert b"never" not in job.out


# ---- the simulated genie-t2t-run -----------------------------------------------------------


def test_genie_launch_env_cwd_and_exit_code(genie):
    rc, out, err = sh(
        genie,
        "cd /data/local/tmp/qwenchat && export LD_LIBRARY_PATH=$PWD/lib && "
        "./bin/genie-t2t-run --env --stderr --exit 3",
    )
    assert rc == 3
    assert err == "Failed to create the dialog.\n"
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert lines["LD"] == "/data/local/tmp/qwenchat/lib"
    assert lines["LD_AT_EXEC"] == "False"  # never seen by the host's dynamic loader
    assert lines["CWD"] == "/data/local/tmp/qwenchat"
    assert lines["ROOT"] == str(genie.config.root)
    assert Path(lines["HOSTCWD"]) == (genie.config.fs_root / "data/local/tmp/qwenchat").resolve()


def test_genie_found_on_path_and_streams(genie):
    chunks: list[tuple[float, bytes]] = []
    session = ShellSession(
        genie,
        f"PATH={GENIE.rsplit('/', 1)[0]}:$PATH genie-t2t-run --tokens",
        stdout=lambda b: chunks.append((time.monotonic(), b)),
        stderr=lambda b: None,
    )
    session.close_stdin()
    assert session.run() == 0
    assert b"".join(c for _, c in chunks) == b"Hello world\n"
    assert len(chunks) >= 3  # token by token, not one buffered block


def test_genie_pid_agrees_with_ps_pidof_and_kill(genie):
    job = Background(genie, f"{GENIE} --pid --sleep 30")
    job.wait_for(b"pid: ")
    job.wait_for(b"\n")
    pid = int(job.out.decode().split("pid: ")[1])
    assert sh(genie, "pidof genie-t2t-run")[1] == f"{pid}\n"
    assert f"{pid} genie-t2t-run" in sh(genie, "ps -A -o pid,name")[1]
    assert sh(genie, f"kill {pid}")[0] == 0
    assert job.join() == 128 + signal.SIGTERM
    wait_until(lambda: genie.processes.get(pid) is None)


def test_background_genie_dollar_bang_is_real_pid(genie):
    rc, out, _ = sh(genie, f"cd /data/local/tmp; {GENIE} --pid --sleep 30 > log 2>&1 & echo $!")
    pid = int(out)
    try:
        wait_until(lambda: b"pid:" in (genie.config.fs_root / "data/local/tmp/log").read_bytes()
                   and (genie.config.fs_root / "data/local/tmp/log").read_bytes().endswith(b"\n"))
        log = (genie.config.fs_root / "data/local/tmp/log").read_text()
        assert log == f"genie-t2t-run pid: {pid}\n"
        assert genie.processes.get(pid).name == "genie-t2t-run"
    finally:
        assert sh(genie, f"kill -9 {pid}")[0] == 0
    wait_until(lambda: not alive(pid))


def test_hangup_leaves_the_launched_genie_running(genie):
    job = Background(genie, f"{GENIE} --pid --sleep 30; echo after")
    job.wait_for(b"\n")
    pid = int(job.out.decode().split("pid: ")[1])
    job.session.hangup()
    assert job.join(5) == 129
    assert b"after" not in job.out
    try:
        time.sleep(0.2)
        assert alive(pid), "SIGHUP to the shell must not reach its child"
        assert genie.processes.get(pid) is not None
        assert sh(genie, "pidof genie-t2t-run")[1] == f"{pid}\n"
    finally:
        sh(genie, f"kill -9 {pid}")
    wait_until(lambda: genie.processes.get(pid) is None)


def test_genie_module_missing_reports_failure(genie, monkeypatch):
    monkeypatch.setenv("QWENCHAT_EMU_GENIE_MODULE", "no_such_module_here")
    rc, _, err = sh(genie, GENIE)
    assert rc == 1 and "No module named" in err


def test_no_marker_means_exec_format_error(phone):
    exe = phone.config.fs_root / "data/local/tmp/genie-t2t-run"
    exe.write_bytes(b"\x7fELF" + b"\0" * 300)
    exe.chmod(0o755)
    rc, _, err = sh(phone, "/data/local/tmp/genie-t2t-run")
    assert rc == 126 and "Exec format error" in err


def test_python_used_is_this_interpreter():
    assert Path(sys.executable).exists()
