"""Regenerate (``--write``) or check (``--check``) the example output in README.md.

Every example in the README is produced by running the command against the emulated phone,
never typed by hand. Blocks live between ``<!-- example: NAME -->`` and ``<!-- /example -->``.
``--check`` runs the same commands and compares them with the README after masking what
legitimately changes between runs (numbers, the port, run ids, dates); the test suite uses
it, so a README whose examples no longer match the tool fails the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)


def _run(args: list[str], env: dict[str, str], display: list[str] | None = None) -> str:
    # One stream, as a terminal shows it: progress on stderr stays where it happened.
    proc = subprocess.run(
        [sys.executable, "-m", "qwenchat", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    shown = display if display is not None else args
    text = f"$ qwenchat {shlex.join(shown)}\n{proc.stdout}"
    if proc.returncode != 0:
        raise SystemExit(f"readme example `qwenchat {shlex.join(args)}` failed:\n{text}")
    return text.rstrip() + "\n"


def generate() -> dict[str, str]:
    """Run every example command; returns name -> console text."""
    work = Path(tempfile.mkdtemp(prefix="qwenchat-readme-"))
    env = dict(
        os.environ,
        QWENCHAT_HOME=str(work / "home"),
        COLUMNS="100",
        NO_COLOR="1",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
    )
    root = work / "emulator"
    assets = work / "assets"
    out: dict[str, str] = {"help": _run(["--help"], env)}
    out["emulator"] = _run(
        ["emulator", "start", "--root", str(root), "--port", "0", "--accept-new-keys",
         "--time-scale", "0.1", "--no-jitter"],
        env,
        display=["emulator", "start", "--port", "0", "--accept-new-keys", "--time-scale", "0.1",
                 "--no-jitter"],
    )
    try:
        status = json.loads(
            subprocess.run(
                [sys.executable, "-m", "qwenchat", "emulator", "status", "--root", str(root), "--json"],
                env=env, text=True, capture_output=True, check=True,
            ).stdout
        )
        address = status["address"]
        subprocess.run(
            [sys.executable, "-m", "qwenchat", "emulator", "make-bundle", str(assets), "--bin-size", "8"],
            env=env, capture_output=True, check=True,
        )
        # `emulator start` remembered the phone (like `qwenchat connect`): no --connect needed.
        dev: list[str] = []
        assert address
        push = ["push-assets", *dev, "--bundle", str(assets / "bundle"), "--qairt", str(assets / "qairt")]
        shown_push = ["push-assets", *dev, "--bundle", "bundle/", "--qairt", "qairt/"]
        out["devices"] = _run(["devices", *dev], env)
        out["push"] = _run(push, env, shown_push) + _run(push, env, shown_push)
        out["bench"] = _run(
            ["bench", *dev, "--prompt-len", "128..1024", "-r", "2", "--warmup", "1",
             "--gen-len", "16", "--cooldown", "0"],
            env,
        )
        out["run"] = _run(["run", *dev, "--max-tokens", "64", "What is the capital of France?"], env)
        out.update(_serve_examples(env))
    finally:
        subprocess.run(
            [sys.executable, "-m", "qwenchat", "emulator", "stop", "--root", str(root)],
            env=env, capture_output=True,
        )
    # The temporary folder and port differ on every run: show stable names instead.
    return {k: v.replace(str(work), "/tmp/qwenchat-demo") for k, v in out.items()}


# The README's client example (shown as `cat client.py`, run as it is shown: only the port
# differs, `qwenchat serve --port 0` picks a free one here).
SERVE_CLIENT = """\
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
messages = [{"role": "user", "content": "What is the capital of France?"}]
reply = client.chat.completions.create(model="qwen2-7b-instruct", messages=messages)
print(reply.choices[0].message.content)

# The follow-up extends what the phone's dialog holds: only the new turn is prefilled.
messages += [{"role": "assistant", "content": reply.choices[0].message.content},
             {"role": "user", "content": "And of Italy?"}]
stream = client.chat.completions.create(model="qwen2-7b-instruct", messages=messages,
                                        stream=True, stream_options={"include_usage": True})
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:
        print(f"\\n{chunk.usage.prompt_tokens_details.cached_tokens} of "
              f"{chunk.usage.prompt_tokens} prompt tokens were in the phone's KV cache")
"""


def _serve_examples(env: dict[str, str]) -> dict[str, str]:
    """`qwenchat serve` in the background; curl's and the openai client's view of it."""
    import signal
    import urllib.request

    args = ["serve", "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenchat", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    banner = ""
    try:
        while "Ctrl-C" not in banner:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"readme example `qwenchat serve` failed:\n{banner}")
            banner += line
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group()
        body = {"model": "qwen2-7b-instruct", "max_tokens": 32,
                "messages": [{"role": "user", "content": "Hello!"}]}
        request = urllib.request.Request(
            url + "/v1/chat/completions", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        # What `jq '.choices[0].message.content, .usage'` prints.
        shown = "\n".join(json.dumps(v, indent=2, ensure_ascii=False)
                          for v in (answer["choices"][0]["message"]["content"], answer["usage"]))
        curl = (
            "$ curl -s http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: "
            "application/json' \\\n    -d '" + json.dumps(body) + "' \\\n"
            "    | jq '.choices[0].message.content, .usage'\n" + shown + "\n"
        )
        script = SERVE_CLIENT.replace("http://127.0.0.1:8000", url)
        client = subprocess.run([sys.executable, "-c", script], env=env, text=True,
                                capture_output=True, timeout=300)
        if client.returncode != 0:
            raise SystemExit(f"readme example client.py failed:\n{client.stderr}")
        run = f"$ cat client.py\n{SERVE_CLIENT}$ python client.py\n{client.stdout}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    shown_banner = banner.replace(url, "http://127.0.0.1:8000")
    return {
        "serve": f"$ qwenchat serve\n{shown_banner}".rstrip() + "\n",
        "serve-curl": curl.rstrip() + "\n",
        "serve-client": run.rstrip() + "\n",
    }


def mask(text: str) -> str:
    """What may differ between two honest runs: numbers, ids, dates, table padding."""
    text = re.sub(r"\b\d{8}-\d{6}-[0-9a-f]+\b", "RUN-ID", text)  # bench run ids
    text = re.sub(r"\d+", "#", text)
    text = re.sub(r"#\s*(?:ms|s)\b", "# s", text)  # a duration may print as 907 ms or 1.0 s
    text = re.sub(r"[#.,:\-–]+", "#", text)
    text = re.sub(r"[▏▎▍▌▋▊▉█]+", "▮", text)  # a terminal bar's length and last eighth follow its value
    text = re.sub(r"[\s━─│┃┏┓┗┛┡┩┣┫╇╈┳┻┼├┤┌┐└┘╭╮╰╯]+", " ", text)
    return text.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    readme = README.read_text()
    names = [m.group("name") for m in BLOCK.finditer(readme)]
    fresh = generate()
    missing = [n for n in names if n not in fresh]
    if missing:
        raise SystemExit(f"README names examples this script does not produce: {missing}")

    if args.write:
        def replace(m: re.Match) -> str:
            return f"{m.group(1)}```console\n{fresh[m.group('name')]}```\n{m.group(4)}"

        README.write_text(BLOCK.sub(replace, readme))
        print(f"wrote {len(names)} examples into {README}")
        return 0

    stale = []
    for m in BLOCK.finditer(readme):
        body = m.group("body").removeprefix("```console\n").rsplit("```", 1)[0]
        if mask(body) != mask(fresh[m.group("name")]):
            stale.append(m.group("name"))
            import difflib

            # Masked words, one per line: the diff shows what changed, not the numbers.
            diff = difflib.unified_diff(
                mask(body).split(), mask(fresh[m.group("name")]).split(),
                "README", "now", lineterm="", n=3,
            )
            print("\n".join(list(diff)[:60]))
    if stale:
        print(f"README examples are stale: {', '.join(stale)} — run `make readme`")
        return 1
    print(f"README examples match the tool ({len(names)} checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
