"""The hard-kill round of `make soak` (issue 31): SIGKILLs of `qwenchat` at random points of
one-shot questions, chats, benches and pushes on one emulated phone, then one ordinary
command; what must hold afterwards:

- the phone's work dir holds nothing but the bundle and its manifest (and live sessions: none
  are left here, every qwenchat was killed): no prompt, profile or config file, no dialog
  state, no push lock, journal or ``.partial``, no genie-app session files;
- no Genie process of a killed run is still running;
- every reply text a killed one-shot printed is stored, up to the store's flush interval
  (``chat/session.py``'s ``_LiveWriter``: 0.5 s): what was printed up to 0.5 s before the
  kill is a prefix of the stored reply; every trial a killed bench showed ("[k/N]") is stored.

The commands are real `python -m qwenchat` processes killed with SIGKILL by this process at a
random time (seeded: the seed is printed), against a phone run in this process at a fast time
scale: SIMULATED. Pushes alternate between two bundles of the same shape (other bytes), so a
killed push leaves a bundle half-replaced; the ordinary command at the end is `qwenchat
push-assets` of the first bundle, which also sweeps what killed runs left.

Run alone: ``python -m benchmarks.soak_kill [--kills N] [--seed S]``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

KILLS = 50
TIME_SCALE = 0.05
FLUSH_S = 0.5  # chat/session.py _LiveWriter.interval: a kill loses at most this much text
KINDS = ("oneshot", "chat", "bench", "push")
# When, after its start, a command may be killed (host seconds): late enough for a bench to
# have shown trials (its set-up reads the phone and builds prompts first).
WINDOW_S = {"oneshot": (0.3, 6.0), "chat": (0.3, 10.0), "bench": (1.0, 20.0), "push": (0.2, 4.0)}


class Proc:
    """A `qwenchat` command whose stdout/stderr chunks are kept with their arrival times."""

    def __init__(self, args: list[str], env: dict[str, str], typed: bytes | None = None) -> None:
        """``typed``: run it in a terminal (a pty: an interactive chat) with these lines
        typed ahead."""
        self.started = time.monotonic()
        self.out: list[tuple[float, bytes]] = []
        self.err: list[tuple[float, bytes]] = []
        command = [sys.executable, "-m", "qwenchat", *args]
        if typed is None:
            self.proc = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            pipes = [(self.proc.stdout, self.out), (self.proc.stderr, self.err)]
        else:
            import pty

            master, slave = pty.openpty()
            self.proc = subprocess.Popen(command, env=dict(env, TERM="xterm"), stdin=slave,
                                         stdout=slave, stderr=slave, start_new_session=True)  # fmt: skip
            os.close(slave)
            os.write(master, typed)
            pipes = [(os.fdopen(master, "rb", buffering=0), self.out)]
        self.readers = [
            threading.Thread(target=self._drain, args=pipe, daemon=True) for pipe in pipes
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _drain(pipe, into: list) -> None:  # noqa: ANN001
        read = getattr(pipe, "read1", pipe.read)
        try:
            for chunk in iter(lambda: read(4096), b""):
                into.append((time.monotonic(), chunk))
        except OSError:  # a pty whose other end is gone: EIO
            pass
        finally:
            pipe.close()

    def kill_at(self, at: float) -> float | None:
        """SIGKILL at host time ``at``; the time it was sent, None if it had ended by then."""
        while time.monotonic() < at:
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        killed = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
        self.proc.wait(timeout=60)
        for reader in self.readers:
            reader.join(10)
        return killed

    def text(self, chunks: list[tuple[float, bytes]], before: float | None = None) -> str:
        data = b"".join(c for t, c in chunks if before is None or t <= before)
        return data.decode("utf-8", errors="replace")


def _bundle_b(a, out: Path):  # noqa: ANN001, ANN202 - BundlePaths
    """Bundle A's shape with other bytes in its context binaries (a re-export)."""
    from dataclasses import replace

    shutil.copytree(a.bundle, out)
    rng = random.Random(1)
    bins = []
    for part in a.ctx_bins:
        (out / part.name).write_bytes(rng.randbytes(part.stat().st_size))
        bins.append(out / part.name)
    return replace(a, bundle=out, ctx_bins=bins)


def _store_rows(home: Path, sql: str, *args: object) -> list[tuple]:
    path = next(home.rglob("*.db"), None)
    if path is None:
        return []
    with sqlite3.connect(path) as db:
        return db.execute(sql, args).fetchall()


def _work_dir_listing(dev, work: str) -> list[str]:  # noqa: ANN001
    out = dev.shell(f"cd {work} && find . -mindepth 1", timeout=60).text.split()
    return sorted(p.removeprefix("./") for p in out)


def main(kills: int = KILLS, seed: int | None = None) -> dict:
    from qwenchat.assets.bundle import plan_bundle
    from qwenchat.assets.push import push_assets
    from qwenchat.device.direct import DirectDevice
    from qwenchat.emulator.bundle import make_bundle
    from qwenchat.emulator.config import EmulatorConfig
    from qwenchat.emulator.server import EmulatorServer
    from qwenchat.layout import PhoneLayout

    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="qwenchat-soak-kill-"))
    home = tmp / "home"
    # Unbuffered: what a one-shot prints reaches this process when printed ("shown").
    env = dict(os.environ, QWENCHAT_HOME=str(home), COLUMNS="200", PYTHONUNBUFFERED="1")
    a = make_bundle(tmp / "a", bin_size_mb=4, arch="v79", parts=4)
    b = _bundle_b(a, tmp / "b" / "bundle")
    config = EmulatorConfig(root=tmp / "phone", time_scale=TIME_SCALE, jitter=False, auth=False)
    server = EmulatorServer(config, port=0)
    server.start()
    layout = PhoneLayout()
    where = ["--connect", server.address, "--transport", "direct"]
    results: dict = {"simulated": True, "seed": seed, "kills": 0, "by_kind": {}, "problems": [],
                     "replies_checked": 0, "benches_checked": 0}  # fmt: skip
    problems: list[str] = results["problems"]
    try:
        with DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5) as dev:
            plan = plan_bundle(a.bundle, a.qairt, "SM8750", tokenizer=a.tokenizer)
            push_assets(dev, plan, layout, overlap=False)
        attempts = 0
        push_next = b
        while results["kills"] < kills and attempts < kills * 3:
            attempts += 1
            kind = rng.choice(KINDS)
            if kind == "oneshot":
                proc = Proc(["run", *where, "--engine", rng.choice(["process", "auto"]),
                             "--max-tokens", "300", f"Soak {attempts}: write about phones"],
                            env)  # fmt: skip
            elif kind == "chat":
                lines = "".join(f"turn {n} of chat {attempts}: tell me more\r" for n in range(4))
                proc = Proc(["run", *where, "--engine", rng.choice(["process", "auto"]),
                             "--max-tokens", "120"], env, typed=lines.encode())  # fmt: skip
            elif kind == "bench":
                proc = Proc(["bench", *where, "--engine", "process", "-p", "64", "-r", "4",
                             "--gen-len", "32", "--warmup", "0", "--cooldown", "0", "--seed",
                             str(attempts)], env)  # fmt: skip
            else:
                proc = Proc(["push-assets", *where, "--bundle", str(push_next.bundle), "--qairt",
                             str(push_next.qairt), "--tokenizer", str(push_next.tokenizer)],
                            env)  # fmt: skip
                push_next = a if push_next is b else b
            killed = proc.kill_at(proc.started + rng.uniform(*WINDOW_S[kind]))
            if killed is None:
                continue  # it ended on its own first: not a kill
            results["kills"] += 1
            results["by_kind"][kind] = results["by_kind"].get(kind, 0) + 1
            if kind == "oneshot":
                results["replies_checked"] += _check_oneshot(proc, killed, home, problems)
            elif kind == "bench":
                results["benches_checked"] += _check_bench(proc, home, problems)
        # The ordinary command: the first bundle pushed (it resumes whatever a killed push
        # left) and whatever killed runs left swept.
        final = subprocess.run(
            [sys.executable, "-m", "qwenchat", "push-assets", *where, "--bundle", str(a.bundle),
             "--qairt", str(a.qairt), "--tokenizer", str(a.tokenizer)],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        results["final_exit"] = final.returncode
        if final.returncode != 0:
            problems.append(f"the ordinary command failed: {final.stderr[-500:]}")
        with DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5) as dev:
            listing = _work_dir_listing(dev, layout.work_dir)
            allowed = {"manifest.json", "tmp", "states"} | {f.remote for f in plan.files}
            allowed |= {p.rsplit("/", 1)[0] for p in allowed if "/" in p}
            for path in list(allowed):
                while "/" in path:
                    path = path.rsplit("/", 1)[0]
                    allowed.add(path)
            results["left_in_work_dir"] = [p for p in listing if p not in allowed]
            results["genie_running"] = dev.shell("pidof genie-t2t-run genie-app").text.split()
        if results["left_in_work_dir"]:
            problems.append(f"left in the work dir: {results['left_in_work_dir']}")
        if results["genie_running"]:
            problems.append(f"Genie still running: {results['genie_running']}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    _report(results)
    return results


def _check_oneshot(proc: Proc, killed: float, home: Path, problems: list[str]) -> int:
    """What a killed one-shot printed up to FLUSH_S before the kill is a prefix of the stored
    reply (stdout is the reply itself)."""
    surely = proc.text(proc.out, before=killed - FLUSH_S)
    if not surely.strip():
        return 0
    rows = _store_rows(home, "SELECT content FROM chat_messages WHERE role = 'assistant'")
    if not any(content.startswith(surely.rstrip("\n")) for (content,) in rows):
        problems.append(f"a one-shot's printed reply is not stored: {surely[:60]!r}…")
    return 1


def _check_bench(proc: Proc, home: Path, problems: list[str]) -> int:
    """Every trial a killed bench showed ("[k/N] …" on stderr) is stored."""
    err = proc.text(proc.err)
    shown = [line for line in err.splitlines() if line.startswith("[") and "/" in line[:8]]
    run_ids = [w for line in err.splitlines() for w in line.split() if w.count("-") == 2
               and w[:8].isdigit()]  # fmt: skip
    if not shown or not run_ids:
        return 0
    stored = _store_rows(home, "SELECT COUNT(*) FROM bench_trials WHERE run_id = ?", run_ids[0])
    if not stored or stored[0][0] < len(shown):
        problems.append(f"bench {run_ids[0]} showed {len(shown)} trial(s), stored {stored}")
    return 1


def _report(results: dict) -> None:
    print(
        f"  hard kills: {results['kills']} SIGKILLs of qwenchat (seed {results['seed']}): "
        f"{json.dumps(results['by_kind'])} · SIMULATED phone, time scale {TIME_SCALE}"
    )
    print(
        f"  killed one-shots whose printed reply was checked against the store: "
        f"{results['replies_checked']}; killed benches whose shown trials were checked: "
        f"{results['benches_checked']}"
    )
    print(
        f"  then `qwenchat push-assets` (exit {results.get('final_exit')}): work dir extras "
        f"{results.get('left_in_work_dir')}, Genie running {results.get('genie_running')}"
    )
    verdict = "ok" if not results["problems"] else "FAILED"
    print(f"  hard-kill round: {verdict}")
    for problem in results["problems"]:
        print(f"    - {problem}")


def _args(argv: list[str]) -> dict:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak_kill")
    parser.add_argument("--kills", type=int, default=KILLS)
    parser.add_argument("--seed", type=int, default=None)
    return vars(parser.parse_args(argv))


if __name__ == "__main__":
    args = _args(sys.argv[1:])
    outcome = main(args["kills"], args["seed"])
    sys.exit(0 if not outcome["problems"] and outcome["kills"] == args["kills"] else 1)
