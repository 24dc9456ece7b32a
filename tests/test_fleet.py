"""Several phones at once (issue #29), end to end on three emulated phones started once.

The fleet: two phones (SM8750 and SM8650) started by ``qwenchat emulator start --count 2
--behind-adb-server PORT``, held by Google's own adb server on a private port (standing for
another computer's ``adb -a``), and one SM8750 phone reached directly (a remembered TCP
phone). A closed port stands for an adb server that does not answer.

Failure modes, each with a test:
- emulated phones cannot be told apart (one serial, one fingerprint, the host's boot id)
  -> ``test_each_emulated_phone_has_its_own_identity``
- a phone of another server is listed under a bare serial (two hosts' phones collide), or
  a server that does not answer fails the whole listing -> ``test_devices_*``
- a remembered adb server is not used later, or a dead one is remembered
  -> ``test_connect_adb_server_*``
- a bare serial two servers hold is guessed -> ``test_a_serial_two_servers_hold_is_not_guessed``
- a one-phone command cannot reach another server's phone by its name, or reports it under
  its bare serial -> ``test_a_single_phone_command_takes_a_name_with_its_server``
- push --all sends a bundle of the wrong arch, stops at the first failure, or re-sends
  what a phone holds; a phone no bundle fits fails instead of being skipped; the exit
  status does not count the failed phones -> ``test_push_all_*``
- N phones' pushes read and hash the same host files N times
  -> ``test_host_files_are_hashed_once_for_every_phone``; two bundles for one arch are
  silently chosen between -> ``test_push_all_refuses_two_bundles_for_one_arch``
- doctor --all stops at the first phone or prints no summary -> ``test_doctor_all_*``
- bench --all: a phone killed mid-sweep stops the others, is not marked, loses its trials,
  or cannot be resumed; resuming re-runs finished phones; the fleet report is not one
  table per phone and length, or the plot lacks a phone
  -> ``test_bench_all_a_phone_killed_midway_is_marked_and_resumed``
- bench --all runs (or fails) a phone that holds no bundle instead of skipping it
  -> ``test_bench_all_skips_a_phone_without_the_bundle``
- Ctrl-C during bench --all leaves phones running Genie, loses their trials, hides the
  report, or exits 0 -> ``test_bench_all_ctrl_c_stops_every_phone_and_keeps_their_trials``

Oracles: serials and addresses come from the fixture (the CLI's own start output is parsed
for the two daemon phones), bundle arch is read back from the phone's files with the
phone's own shell, exit codes are hand-written numbers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qwenchat.cli import app
from qwenchat.cli.errors import run_app

ADB = shutil.which("adb")
pytestmark = [
    pytest.mark.google_adb,
    pytest.mark.skipif(ADB is None, reason="Google's adb is not installed (make test installs it)"),
]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_app(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return _free_port()


@dataclass
class Fleet:
    direct: object  # RunningEmulator-like: address, serial, phone
    remote: list[tuple[str, str, str]]  # (address on the other server, serial, soc)
    server: str  # HOST:PORT of the other computer's adb server
    dead_server: str
    root: Path

    @property
    def remote_names(self) -> list[str]:
        return [f"{address}@{self.server}" for address, _, _ in self.remote]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[Fleet]:
    from qwenchat.emulator import PhoneStartError
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer

    root = tmp_path_factory.mktemp("fleet")
    port = _free_port()
    env = {**os.environ, "COLUMNS": "200"}
    started = subprocess.run(
        [str(Path(os.sys.executable)), "-m", "qwenchat", "emulator", "start", "--count", "2",
         "--soc", "SM8750", "--soc", "SM8650", "--port", "0", "--root", str(root / "far"),
         "--time-scale", "0.01", "--no-jitter", "--behind-adb-server", str(port)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    remote = re.findall(r"listening on (\S+)\s+serial (\S+)\s+soc (\S+)", started.stdout)
    assert len(remote) == 2, started.stdout
    config = EmulatorConfig(root=root / "near", auth=False, time_scale=0.01, jitter=False)
    server = EmulatorServer(config, port=0)
    try:
        server.start()
    except PhoneStartError as exc:
        pytest.fail(f"the emulated phone cannot start here: {exc}", pytrace=False)

    @dataclass
    class Direct:
        address: str
        serial: str
        phone: object

    try:
        yield Fleet(
            direct=Direct(server.address, server.serial, server.phone),
            remote=remote,
            server=f"127.0.0.1:{port}",
            dead_server=f"127.0.0.1:{_closed_port()}",
            root=root,
        )
    finally:
        server.stop()
        subprocess.run([os.sys.executable, "-m", "qwenchat", "emulator", "stop", "--root",
                        str(root / "far")], capture_output=True, timeout=60)  # fmt: skip
        subprocess.run([ADB, "-P", str(port), "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def near_remembered(fleet):
    """The direct phone remembered (`qwenchat connect`) in this test's data dir."""
    from qwenchat.device.endpoints import parse_endpoint, remember

    remember(parse_endpoint(fleet.direct.address))
    return fleet


def _phone_shell(fleet: Fleet, name: str, command: str) -> str:
    """Ask a phone of the fleet with Google's adb (not qwenchat's code)."""
    if "@" in name:
        serial, _, server = name.partition("@")
        port = server.rpartition(":")[2]
        args = [ADB, "-P", port, "-s", serial, "shell", command]
    else:
        return fleet.direct.phone.sh(command).stdout.decode()
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout


def test_each_emulated_phone_has_its_own_identity(fleet, capsys):
    names = [fleet.direct.address, *fleet.remote_names]
    serials = [_phone_shell(fleet, n, "getprop ro.serialno").strip() for n in names]
    fingerprints = [_phone_shell(fleet, n, "getprop ro.build.fingerprint").strip() for n in names]
    boot_ids = [_phone_shell(fleet, n, "cat /proc/sys/kernel/random/boot_id").strip()
                for n in names]  # fmt: skip
    host_boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert serials == [fleet.direct.serial, fleet.remote[0][1], fleet.remote[1][1]]
    assert len(set(serials)) == 3 and all(s.startswith("emulator-qwenchat-") for s in serials)
    assert len(set(fingerprints)) == 3
    assert "sm8650" in fingerprints[2] and "sm8750" in fingerprints[1]
    assert len(set(boot_ids)) == 3 and host_boot_id not in boot_ids
    assert all(re.fullmatch(r"[0-9a-f-]{36}", b) for b in boot_ids)
    code, out, _ = cli(capsys, "emulator", "status", "--root", str(fleet.root / "far"), "--json")
    status = json.loads(out)
    assert code == 0 and [(s["serial"], s["soc"]) for s in status] == [
        (fleet.remote[0][1], "SM8750"), (fleet.remote[1][1], "SM8650")]  # fmt: skip


def test_devices_lists_every_server_and_names_each_phone(near_remembered, capsys):
    fleet = near_remembered
    code, out, err = cli(capsys, "devices", "--json", "--adb-server", fleet.server,
                         "--adb-server", fleet.dead_server)  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)
    by_address = {row["address"]: row for row in rows}
    assert sorted(by_address) == sorted([fleet.direct.address, *fleet.remote_names])
    assert by_address[fleet.direct.address]["serial"] == fleet.direct.serial
    for (_address, serial, soc), name in zip(fleet.remote, fleet.remote_names, strict=True):
        assert by_address[name]["serial"] == serial
        assert by_address[name]["soc"] == soc
        assert by_address[name]["server"] == fleet.server
    assert by_address[fleet.direct.address]["server"] is None
    # The dead server: one line on stderr, the listing of the others stands.
    assert err.strip() == f"adb server {fleet.dead_server}: not answering (connection refused)"


def test_devices_table_shows_an_unanswering_server_as_one_line(near_remembered, capsys):
    fleet = near_remembered
    code, out, _ = cli(capsys, "devices", "--adb-server", fleet.server,
                       "--adb-server", fleet.dead_server)  # fmt: skip
    assert code == 0
    dead_lines = [line for line in out.splitlines() if fleet.dead_server in line]
    assert dead_lines == [f"adb server {fleet.dead_server}: not answering (connection refused) "
                          "(its phones are not listed)"]  # fmt: skip
    for name in fleet.remote_names:
        assert name in out
    assert fleet.direct.address in out


def test_connect_adb_server_remembers_it_and_refuses_a_dead_one(fleet, capsys):
    code, out, err = cli(capsys, "connect", "--adb-server", fleet.dead_server)
    assert code == 1 and out == ""
    assert err.splitlines()[0].endswith(f"adb server {fleet.dead_server}: not answering "
                                        "(connection refused)")  # fmt: skip
    code, out, err = cli(capsys, "connect", "--adb-server", fleet.server)
    assert code == 0, err
    assert out.startswith(f"remembered adb server {fleet.server} (")
    code, out, err = cli(capsys, "devices", "--json")  # no --adb-server: the remembered one
    assert code == 0, err
    assert sorted(row["address"] for row in json.loads(out)) == sorted(fleet.remote_names)
    code, out, _ = cli(capsys, "disconnect", "--adb-server", fleet.server)
    assert (code, out) == (0, f"forgot adb server {fleet.server}\n")
    code, out, _ = cli(capsys, "devices", "--json")
    assert json.loads(out) == []


def test_a_serial_two_servers_hold_is_not_guessed(fleet, capsys):
    """The far server's first phone, asked by its bare serial, with the same server named
    twice under two spellings (127.0.0.1:P and localhost:P): two phones answer to it."""
    port = fleet.server.rpartition(":")[2]
    address = fleet.remote[0][0]
    code, out, err = cli(capsys, "doctor", "-s", address, "--adb-server", fleet.server,
                         "--adb-server", f"localhost:{port}", "--json")  # fmt: skip
    assert code == 1 and out == ""
    assert f"2 phones answer to '{address}'" in err
    assert f"-s {address}@{fleet.server}" in err


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A v79 export and a v75 export (their context binaries say their arch), and one QAIRT
    SDK holding both archs' runtime, as a real SDK does."""
    from qwenchat.emulator.bundle import make_bundle, make_qairt

    out = tmp_path_factory.mktemp("fleet-bundles")
    v79 = make_bundle(out / "v79", bin_size_mb=1, arch="v79", parts=4)
    v75 = make_bundle(out / "v75", bin_size_mb=1, arch="v75", parts=4)
    qairt = make_qairt(out / "qairt", arch="v79")
    make_qairt(qairt, arch="v75")
    return v79.bundle, v75.bundle, qairt


def _skels(fleet: Fleet, name: str) -> str:
    return _phone_shell(fleet, name, "ls /data/local/tmp/qwenchat/skel 2>&1").strip()


def _first_part_sha(fleet: Fleet, name: str) -> str:
    """SHA-256 of the phone's first context binary, by the phone's own sha256sum."""
    out = _phone_shell(fleet, name, "sha256sum /data/local/tmp/qwenchat/bundle/"
                       "weight_sharing_model_1_of_4.serialized.bin")  # fmt: skip
    return out.split()[0]


def _host_sha(bundle: Path) -> str:
    import hashlib

    return hashlib.sha256((bundle / "weight_sharing_model_1_of_4.serialized.bin").read_bytes()
                          ).hexdigest()  # fmt: skip


def test_push_all_sends_each_phone_its_arch_bundle_and_counts_failures(
    near_remembered, bundles, capsys, phone_fault_by_root
):
    fleet = near_remembered
    v79, v75, qairt = bundles
    args = ["push-assets", "--all", "--adb-server", fleet.server, "--adb-server",
            fleet.dead_server, "--qairt", str(qairt), "--json"]  # fmt: skip
    # Only a v79 bundle: the SM8650 (v75) phone is skipped, with one line, not failed.
    code, out, err = cli(capsys, *args, "--bundle", f"v79={v79}")
    assert code == 0, err
    result = {p["phone"]: p for p in json.loads(out)["phones"]}
    sm8650 = fleet.remote_names[1]
    assert result[sm8650]["status"] == "skipped"
    assert result[sm8650]["message"] == f"no bundle for Hexagon v75 (SM8650); given: v79={v79}"
    assert {result[n]["status"] for n in (fleet.direct.address, fleet.remote_names[0])} == {"sent"}

    # Both bundles: the v75 phone gets the v75 one; the two v79 phones already hold theirs.
    both = ["--bundle", f"v79={v79}", "--bundle", f"v75={v75}"]
    code, out, err = cli(capsys, *args, *both)
    assert code == 0, err
    result = {p["phone"]: p for p in json.loads(out)["phones"]}
    assert result[sm8650]["status"] == "sent" and result[sm8650]["arch"] == "v75"
    assert result[fleet.direct.address]["status"] == "unchanged"
    assert result[fleet.remote_names[0]]["status"] == "unchanged"
    assert "libQnnHtpV75Skel.so" in _skels(fleet, sm8650)
    assert "libQnnHtpV79Skel.so" in _skels(fleet, fleet.direct.address)
    assert "V75" not in _skels(fleet, fleet.direct.address)
    assert _first_part_sha(fleet, sm8650) == _host_sha(v75)
    assert _first_part_sha(fleet, fleet.remote_names[0]) == _host_sha(v79)
    assert _first_part_sha(fleet, fleet.direct.address) == _host_sha(v79) != _host_sha(v75)

    # A changed config goes to every phone; one phone refuses to rename files into place:
    # it fails, the other two finish, and the exit status counts one failure.
    phone_fault_by_root(fleet.root / "far" / "phone-1", "fail-command", "mv")
    try:
        code, out, err = cli(capsys, *args, *both, "--context-size", "2048")
    finally:
        phone_fault_by_root(fleet.root / "far" / "phone-1", None, None)
    report = json.loads(out)
    result = {p["phone"]: p for p in report["phones"]}
    assert code == 1 and report["failed"] == 1
    assert result[fleet.remote_names[0]]["status"] == "failed"
    assert result[sm8650]["status"] == "sent" and result[fleet.direct.address]["status"] == "sent"
    assert report["unanswered_servers"] == [
        {"server": fleet.dead_server, "error": f"adb server {fleet.dead_server}: not answering "
         "(connection refused)"}]  # fmt: skip


def test_push_all_table_has_a_row_per_phone(near_remembered, bundles, capsys):
    fleet = near_remembered
    v79, v75, qairt = bundles
    code, out, err = cli(capsys, "push-assets", "--all", "--adb-server", fleet.server,
                         "--qairt", str(qairt), "--bundle", f"v79={v79}", "--bundle",
                         f"v75={v75}")  # fmt: skip
    assert code == 0, err
    for name in (fleet.direct.address, *fleet.remote_names):
        assert name in out
    assert "0 failed" in out


def test_doctor_all_prints_one_summary_for_every_phone(near_remembered, bundles, capsys):
    fleet = near_remembered
    code, out, err = cli(capsys, "doctor", "--all", "--adb-server", fleet.server, "--json")
    report = json.loads(out)
    phones = {p["phone"]: p for p in report["phones"]}
    assert sorted(phones) == sorted([fleet.direct.address, *fleet.remote_names])
    assert phones[fleet.remote_names[1]]["soc"] == "SM8650"
    assert all(p["simulated"] for p in phones.values())
    assert code == (1 if report["failed"] else 0)
    code, out, err = cli(capsys, "doctor", "--all", "--adb-server", fleet.server)
    assert "doctor: 3 phone(s)" in out
    for name in phones:
        assert name in out


@pytest.fixture
def phone_fault_by_root():
    """Switch a fault on (or all off: name None) in a daemon phone, found by its root."""
    from qwenchat.emulator.faults import clear_faults, set_fault

    def switch(root: Path, name: str | None, value: object = None) -> None:
        if name is None:
            clear_faults(root, None)
        else:
            set_fault(root, name, None if value is None else str(value))
        time.sleep(0.05)

    return switch


def _victim_trials(phone: str) -> int:
    """Trials the store holds for ``phone``'s run in the newest fleet run (read with
    sqlite3 directly, not through qwenchat's storage code)."""
    import sqlite3

    from qwenchat.paths import data_dir

    path = data_dir() / "qwenchat.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=10) as db:
        try:
            row = db.execute(
                "SELECT COUNT(*) FROM bench_trials t JOIN bench_fleet_phones p"
                " ON t.run_id = p.run_id WHERE p.phone = ?", (phone,)).fetchone()  # fmt: skip
        except sqlite3.OperationalError:  # tables not made yet
            return 0
    return int(row[0])


def test_bench_all_a_phone_killed_midway_is_marked_and_resumed(near_remembered, bundles, capsys):
    """Three sweeps at once; the SM8650 phone's emulator is killed (SIGKILL) once its first
    trial is stored: it is marked lost with what it measured, the other two finish, the
    exit status counts one; restarted, --resume finishes it alone."""
    import signal
    import threading

    from qwenchat.emulator.storage import Storage

    fleet = near_remembered
    v79, v75, qairt = bundles
    code, _, err = cli(capsys, "push-assets", "--all", "--adb-server", fleet.server, "--qairt",
                       str(qairt), "--bundle", f"v79={v79}", "--bundle", f"v75={v75}", "--json")  # fmt: skip
    assert code == 0, err
    victim, victim_root = fleet.remote_names[1], fleet.root / "far" / "phone-2"
    victim_port = fleet.remote[1][0].rpartition(":")[2]
    pid = json.loads((victim_root / "state" / "emulator.json").read_text())["pid"]
    killed = threading.Event()

    def kill_after_first_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _victim_trials(victim) < 1:
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_after_first_trial, daemon=True)
    killer.start()
    sweep = ["--prompt-len", "128,256,512", "-r", "2", "--warmup", "0", "--gen-len", "4",
             "--cooldown", "0", "-o", "json"]  # fmt: skip
    code, out, err = cli(capsys, "bench", "--all", "--adb-server", fleet.server, *sweep)
    killer.join(timeout=130)
    assert killed.is_set()
    report = json.loads(out)
    ends = {p["phone"]: p["status"] for p in report["phones"]}
    survivors = [fleet.direct.address, fleet.remote_names[0]]
    assert ends == {victim: "lost", survivors[0]: "done", survivors[1]: "done"}, err
    assert code == 1
    for name in survivors:
        rows = [r for r in report["rows"] if r["phone"] == name]
        assert [(r["prompt_tokens"], r["trials_ok"]) for r in rows] == [(128, 2), (256, 2), (512, 2)]
        assert all(r["simulated"] and r["chip"] == "SM8750" for r in rows)
        assert all(r["ttft_ms_median"] > 0 and r["libgenie_version"] for r in rows)
    lost_rows = [r for r in report["rows"] if r["phone"] == victim]
    assert 1 <= sum(r["trials_ok"] for r in lost_rows) < 6
    fleet_id = report["fleet_id"]
    assert f"{victim}: lost" in err

    # The phone comes back (same root, serial and port): --resume finishes it alone.
    Storage(victim_root, 0).release()
    restarted = subprocess.run(
        [os.sys.executable, "-m", "qwenchat", "emulator", "start", "--root", str(victim_root),
         "--port", victim_port, "--soc", "SM8650", "--time-scale", "0.01", "--no-jitter",
         "--behind-adb-server", fleet.server.rpartition(":")[2]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert fleet.remote[1][1] in restarted.stdout  # the same serial
    code, out, err = cli(capsys, "bench", "--resume", fleet_id, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert {p["phone"]: p["status"] for p in report["phones"]} == dict.fromkeys(
        [victim, *survivors], "done")  # fmt: skip
    rows = [r for r in report["rows"] if r["phone"] == victim]
    assert [(r["prompt_tokens"], r["trials_ok"]) for r in rows] == [(128, 2), (256, 2), (512, 2)]
    assert all(r["chip"] == "SM8650" for r in rows)
    assert f"{survivors[0]} [" not in err  # the finished phones did not run again

    code, out, _ = cli(capsys, "results", "list")
    assert code == 0 and f"{fleet_id}  fleet of 3 phone(s): 3 done" in out

    # One table for the fleet: a row per phone and prompt length, in every format.
    code, out, _ = cli(capsys, "results", "show", fleet_id, "-o", "csv")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 1 + 9
    assert lines[0].startswith("fleet_id,phone,chip,status,prompt_tokens,ttft_ms_median")
    code, out, _ = cli(capsys, "results", "show", fleet_id, "-o", "md")
    assert code == 0 and out.count(f"| {victim} |") == 3 and "SIMULATED" in out
    svg = Path(os.environ["QWENCHAT_HOME"]) / "fleet.svg"
    code, _, err = cli(capsys, "results", "show", fleet_id, "-o", "jsonl", "--plot", str(svg))
    assert code == 0, err
    drawn = svg.read_text()
    for name in (victim, *survivors):  # a TTFT line per phone
        assert f'id="phone-{name}"' in drawn


def test_host_files_are_hashed_once_for_every_phone(tmp_path):
    """Four pushes asking at once for the hashes of the same files: each file is read once
    (the hash cache counts reads), and every push gets hashlib's digest."""
    import hashlib
    import threading

    from qwenchat.assets.fleet import _SharedHashing
    from qwenchat.manifest import HashCache

    files = []
    for i in range(3):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(os.urandom(2_000_000 + i))
        files.append(path)
    expected = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    with HashCache(tmp_path / "cache.sqlite") as cache:
        shared = _SharedHashing(cache)
        views = [shared.view() for _ in range(4)]
        got: list[dict] = [{} for _ in views]
        start = threading.Barrier(4)

        def push(i: int) -> None:
            start.wait()
            got[i] = views[i].sha256_many(files)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert all(g == expected for g in got)
        assert cache.hashed == 3  # not 12
        assert sum(v.hashed for v in views) == 3 and sum(v.hits for v in views) == 9


def test_push_all_refuses_two_bundles_for_one_arch(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    code, out, err = cli(capsys, "push-assets", "--all", "--bundle", f"v79={a}", "--bundle",
                         f"V79={b}")  # fmt: skip
    assert (code, out) == (2, "")
    assert f"error: two bundles for Hexagon v79: {a} and {b}" in err


def test_bench_all_ctrl_c_stops_every_phone_and_keeps_their_trials(near_remembered, bundles,
                                                                   capsys):  # fmt: skip
    """SIGINT to `qwenchat bench --all` once a trial is printed: exit 130, every phone's run
    stored as interrupted with the trials it had, the report printed first; --resume
    finishes them all."""
    import signal

    fleet = near_remembered
    v79, v75, qairt = bundles
    code, _, err = cli(capsys, "push-assets", "--all", "--adb-server", fleet.server, "--qairt",
                       str(qairt), "--bundle", f"v79={v79}", "--bundle", f"v75={v75}", "--json")  # fmt: skip
    assert code == 0, err
    proc = subprocess.Popen(
        [os.sys.executable, "-m", "qwenchat", "bench", "--all", "--adb-server", fleet.server,
         "--prompt-len", "128,256,512", "-r", "3", "--warmup", "0", "--gen-len", "4",
         "--cooldown", "0", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if " tok rep " in line:  # a trial is stored
            break
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=180)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    report = json.loads(out)
    fleet_id = report["fleet_id"]
    assert {p["status"] for p in report["phones"]} <= {"interrupted", "done"}, report["phones"]
    assert "interrupted" in {p["status"] for p in report["phones"]}
    assert sum(r["trials_ok"] for r in report["rows"]) >= 1
    assert err.rstrip().splitlines()[-2] == (f"error: fleet bench run {fleet_id} stopped: "
                                             "interrupted")  # fmt: skip
    code, out, err = cli(capsys, "bench", "--resume", fleet_id, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert {p["status"] for p in report["phones"]} == {"done"}
    assert all(r["trials_ok"] == 3 for r in report["rows"]) and len(report["rows"]) == 9
    # Compared with itself, phone by phone: every difference is zero, one row per phone,
    # length and metric.
    code, out, err = cli(capsys, "results", "compare", fleet_id, fleet_id, "-o", "csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == ("a_fleet,b_fleet,phone,length,metric,a_median,b_median,diff,diff_pct,"
                        "a_halfwidth,b_halfwidth,n_a,n_b,beyond_spread,direction")  # fmt: skip
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 3 * 3 * 2
    assert {r[2] for r in rows} == {p["phone"] for p in report["phones"]}
    assert {(r[7], r[-1]) for r in rows} == {("0.0", "same")}


def test_a_single_phone_command_takes_a_name_with_its_server(fleet, capsys):
    """`-s SERIAL@HOST:PORT` reaches another server's phone in a one-phone command too, and
    the phone is called so in what it prints."""
    name = fleet.remote_names[1]
    code, out, err = cli(capsys, "clean", "-s", name)
    assert code == 0, err
    assert out.startswith("removed /data/local/tmp/qwenchat/state")
    code, out, err = cli(capsys, "doctor", "-s", name, "--json")
    report = json.loads(out)
    assert report["phones"][0]["phone"] == name
    assert report["phones"][0]["report"]["address"] == name
    assert report["phones"][0]["report"]["info"]["address"] == name


def test_bench_all_skips_a_phone_without_the_bundle(near_remembered, bundles, capsys):
    """--all means the phones that hold the model: one whose bundle was removed is skipped
    with its reason, not counted as failed; the others run."""
    fleet = near_remembered
    v79, v75, qairt = bundles
    code, _, err = cli(capsys, "push-assets", "--all", "--adb-server", fleet.server, "--qairt",
                       str(qairt), "--bundle", f"v79={v79}", "--bundle", f"v75={v75}", "--json")  # fmt: skip
    assert code == 0, err
    code, _, err = cli(capsys, "clean", "-s", fleet.direct.address, "--bundle", "--yes")
    assert code == 0, err
    code, out, err = cli(capsys, "bench", "--all", "--adb-server", fleet.server, "-p", "128",
                         "-r", "1", "--warmup", "0", "--gen-len", "2", "--cooldown", "0",
                         "-o", "json")  # fmt: skip
    assert code == 0, err
    phones = {p["phone"]: p for p in json.loads(out)["phones"]}
    assert phones[fleet.direct.address]["status"] == "skipped"
    assert phones[fleet.direct.address]["run_id"] is None
    assert "manifest" in phones[fleet.direct.address]["note"]
    assert {phones[n]["status"] for n in fleet.remote_names} == {"done"}
