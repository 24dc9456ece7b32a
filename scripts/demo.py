"""`make demo`: the whole tool against the emulated (SIMULATED) phone.

Starts the emulated phone, builds a synthetic Genie bundle (random context binaries, a stub
QAIRT SDK and the real Qwen2 tokenizer), pushes it and pushes it again (nothing to send),
checks the phone, runs a short bench sweep and a one-shot chat, and stops the phone. A step
whose command has not landed yet says so instead of faking a result.

Everything the demo records goes to a folder of its own under the system's temporary
directory (printed at the start and the end; QWENCHAT_DEMO_DIR chooses another), never into
the checkout, so it runs from a read-only clone and a developer's own history is untouched.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

DEMO = Path(os.environ.get("QWENCHAT_DEMO_DIR") or tempfile.mkdtemp(prefix="qwenchat-demo-"))
QWENCHAT = [sys.executable, "-m", "qwenchat"]


def banner(text: str) -> None:
    print(f"\n\033[1;36m━━ {text}\033[0m", flush=True)


def available(command: str) -> bool:
    """Is this subcommand part of this checkout's CLI?"""
    probe = subprocess.run([*QWENCHAT, command, "--help"], capture_output=True, env=ENV)
    return probe.returncode == 0


def run(args: list[str], *, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    print(f"$ qwenchat {shlex.join(args)}", flush=True)
    proc = subprocess.run([*QWENCHAT, *args], env=ENV, text=True, capture_output=capture)
    if capture:
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `qwenchat {shlex.join(args)}` failed (exit {proc.returncode})")
    return proc


def cannot_show(what: str, command: str) -> None:
    print(f"(cannot show {what} yet: `qwenchat {command}` is not in this checkout)")


ENV = dict(os.environ, QWENCHAT_HOME=str(DEMO / "home"), PYTHONUNBUFFERED="1")


def main() -> int:
    DEMO.mkdir(parents=True, exist_ok=True)
    print("qwenchat demo — every figure below comes from the emulated phone: SIMULATED, not a real device.")
    print(f"the demo's data (phone, bundle, history) goes to {DEMO}")
    if not available("emulator"):
        cannot_show("anything on a phone", "emulator")
        return 0

    root = DEMO / "emulator"
    banner("1. start the emulated phone (time scale 0.1: ten times faster than the published figures)")
    run(["emulator", "stop", "--root", str(root)], check=False, capture=True)
    run([
        "emulator", "start", "--root", str(root), "--port", "0", "--accept-new-keys",
        "--time-scale", "0.1", "--link", "usb3",
    ])
    status = json.loads(run(["emulator", "status", "--root", str(root), "--json"], capture=True).stdout)
    print(f"the phone listens on {status['address']}; `emulator start` remembered it, so no "
          "command below needs --connect")
    dev: list[str] = []
    try:
        banner("2. build a synthetic bundle: 4 random context binaries, stub QAIRT SDK, real Qwen2 tokenizer")
        assets = DEMO / "assets"
        run(["emulator", "make-bundle", str(assets), "--bin-size", "32"])

        banner("3. the phone as qwenchat sees it")
        if available("devices"):
            run(["devices", *dev])
        else:
            cannot_show("the phone's details", "devices")

        banner("4. push the bundle (then again: nothing changed, nothing sent)")
        if available("push-assets"):
            push = ["push-assets", *dev, "--bundle", str(assets / "bundle"), "--qairt", str(assets / "qairt")]
            run(push)
            run(push)
        else:
            cannot_show("push-assets", "push-assets")
            return 0

        banner("5. check the phone step by step")
        if available("doctor"):
            run(["doctor", *dev], check=False)
        else:
            cannot_show("doctor", "doctor")

        banner("6. a short bench sweep against the published Qwen2-7B-Instruct figures")
        if available("bench"):
            run(["bench", *dev, "--prompt-len", "128..4096", "-r", "2", "--warmup", "1",
                 "--gen-len", "32", "--cooldown", "0"])
        else:
            cannot_show("bench", "bench")

        banner("7. a one-shot chat")
        if available("run"):
            run(["run", *dev, "--max-tokens", "64", "What is the capital of France? Answer briefly."])
        else:
            cannot_show("chat", "run")
    finally:
        banner("8. stop the emulated phone")
        run(["emulator", "stop", "--root", str(root)], check=False)
    print(f"\ndemo done. Its data: {DEMO}\nIts history: QWENCHAT_HOME={DEMO / 'home'} "
          ".venv/bin/qwenchat history")
    return 0


if __name__ == "__main__":
    sys.exit(main())
