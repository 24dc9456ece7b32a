"""The simulated genie-app, driven as the session engine will drive it: through the emulated
phone's real adb shell (a direct ADB connection), with the synthetic bundle pushed, scripts
as files or a FIFO made by toybox mkfifo and held open by a writer. SIMULATED throughout.

Oracles are hand-written strings (qwenchat/genie/genie_app.md section 9) and figures computed
here from the device profile and the real Qwen2 tokenizer.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time

import pytest
from tokenizers import Tokenizer

from qwenchat.emulator.faults import clear_faults
from qwenchat.layout import PhoneLayout

L = PhoneLayout()
SCALE = 0.02
# A device profile for these tests: a load long enough to tell apart from a prefill.
PROFILE = {"init_ms": 3000, "prefill_chunk_ms": 170.0, "chunk_tokens": 128, "decode_tok_s": 15.0}
PAD = " " * 4096 + "\n"  # genie_app.md section 2: fills the reader's 4 KB refill
RED, RESET = "\033[91m", "\033[0m"
ERR_LINE = re.compile(r"^\033\[91m\[\d+\]: (.*)\033\[0m$")


def chatml(user: str) -> str:
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def followup(user: str) -> str:
    return f"\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tokenizer(synthetic_bundle) -> Tokenizer:
    return Tokenizer.from_file(str(synthetic_bundle.tokenizer))


def count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


class App:
    """An emulated phone holding the bundle and the SDK's genie-app stub."""

    def __init__(self, emu, dev, synthetic_bundle) -> None:
        self.emu, self.dev = emu, dev
        stub = synthetic_bundle.qairt / "bin" / "aarch64-android" / "genie-app"
        dev.push(stub, f"{L.bin_dir}/genie-app", mode=0o755)
        self.dir = f"{L.work_dir}/app"
        assert dev.shell(f"mkdir -p {self.dir}").ok

    def put(self, name: str, text: str) -> str:
        path = f"{self.dir}/{name}"
        self.dev.push_bytes(text.encode(), path)
        return path

    def config(self, name: str = "cfg.json", **context) -> str:
        cfg = json.loads(self.dev.pull_bytes(f"{L.bundle_dir}/genie_config.json"))
        cfg["dialog"]["context"].update(context)
        return self.put(name, json.dumps(cfg))

    def command(self, args: str) -> str:
        return (
            f"cd {L.bundle_dir} && LD_LIBRARY_PATH={L.lib_dir} ADSP_LIBRARY_PATH={L.skel_dir} "
            f"exec {L.bin_dir}/genie-app {args}"
        )

    def run(self, script: str, timeout: float = 120):
        path = self.put("script.txt", script)
        return self.dev.shell(self.command(f"-s {path}"), timeout=timeout)

    def profile(self, name: str = "p.json") -> dict:
        return json.loads(self.dev.pull_bytes(f"{self.dir}/{name}"))


@pytest.fixture
def app(bundled_phone, synthetic_bundle):
    def make(profile: dict | None = None, **config) -> App:
        emu, dev = bundled_phone(profile=profile or PROFILE, time_scale=SCALE, **config)
        return App(emu, dev, synthetic_bundle)

    return make


def events(profile: dict, kind: str) -> list[dict]:
    return [e for c in profile["components"] for e in c["events"] if e["type"] == kind]


def replies(stdout: str) -> list[str]:
    return re.findall(r"\[BEGIN\]: (.*?)\[END\]\n", stdout, re.S)


def red_lines(stderr: str) -> list[str]:
    return [m.group(1) for line in stderr.splitlines() if (m := ERR_LINE.match(line))]


# ---- a script file: one load, context kept, reset, errors go on -------------------------


def test_one_load_for_many_queries_context_accumulates_and_reset_empties_it(app, tokenizer):
    phone = app()
    d = phone.dir
    p1, p2, p3 = chatml("Hello there."), followup("And Mars?"), chatml("Fresh start.")
    for name, text in (("p1.txt", p1), ("p2.txt", p2), ("p3.txt", p3)):
        phone.put(name, text)
    cfg = phone.config()
    result = phone.run(
        "profile create prof\n"
        f"dialog config create cfg {cfg}\n"
        "dialog config bind profile cfg prof\n"
        "dialog create d cfg\n"
        f"dialog query d {d}/p1.txt\n"
        f"dialog query d {d}/p2.txt\n"
        "dialog reset d\n"
        f"dialog query d {d}/p3.txt\n"
        f"profile save prof {d}/p.json\n"
        "exit\n"
    )
    assert result.exit_code == 0, result.error_text
    out = result.text
    # Every command is echoed, then its output; three replies, each ended by [END].
    echoed = [line for line in out.splitlines() if line.startswith("> ")]
    assert echoed == [
        f"> script {d}/script.txt",
        "> profile create prof",
        f"> dialog config create cfg {cfg}",
        "> dialog config bind profile cfg prof",
        "> dialog create d cfg",
        f"> dialog query d {d}/p1.txt",
        f"> dialog query d {d}/p2.txt",
        "> dialog reset d",
        f"> dialog query d {d}/p3.txt",
        f"> profile save prof {d}/p.json",
        "> exit",
    ]
    assert f"[PROMPT]: {p1}\n[BEGIN]: " in out
    assert len(replies(out)) == 3 and all(replies(out))
    # Read through a pipe, stderr holds only what the real genie-app writes there: no notice
    # the product would have to filter (the emulated phone says SIMULATED elsewhere).
    assert "SIMULATED" not in result.error_text and "qwenchat emulator" not in result.error_text

    prof = phone.profile()
    (create,) = events(prof, "GenieDialog_create")  # the model was loaded once
    queries = events(prof, "GenieDialog_query")
    assert len(queries) == 3
    init_us = PROFILE["init_ms"] * SCALE * 1000
    assert create["init-time"]["value"] >= init_us
    for q in queries:  # no query paid the load: its time to first token is one prefill
        chunks = math.ceil(q["num-prompt-tokens"]["value"] / PROFILE["chunk_tokens"])
        ttft = q["time-to-first-token"]["value"]
        assert chunks * PROFILE["prefill_chunk_ms"] * SCALE * 1000 <= ttft < init_us
        assert q["start"] >= create["stop"]
    # Turn 2 continues the dialog (EOS first); after reset, turn 3 starts empty (no EOS).
    n = [q["num-prompt-tokens"]["value"] for q in queries]
    assert n == [count(tokenizer, p1), 1 + count(tokenizer, p2), count(tokenizer, p3)]


def test_a_prompt_that_does_not_fit_what_is_left_fails_and_the_script_goes_on(app, tokenizer):
    phone = app()
    d = phone.dir
    p1, p2 = chatml("Tell me a story in 200 tokens."), followup("Now a second one.")
    phone.put("p1.txt", p1)
    phone.put("p2.txt", p2)
    n1, n2 = count(tokenizer, p1), 1 + count(tokenizer, p2)
    # Room for turn 1 and its reply (at most 100 tokens), not for turn 2 on top of it.
    size = n1 + 110
    whole = json.loads(phone.dev.pull_bytes(f"{L.bundle_dir}/genie_config.json"))
    whole["dialog"]["context"]["size"] = size
    whole["dialog"]["max-num-tokens"] = 100
    cfg = phone.put("cfg.json", json.dumps(whole))
    result = phone.run(
        "profile create prof\n"
        f"dialog config create cfg {cfg}\n"
        "dialog config bind profile cfg prof\n"
        "dialog create d cfg\n"
        f"dialog query d {d}/p1.txt\n"
        f"dialog query d {d}/p2.txt\n"
        "dialog query nosuch hello\n"
        "dialog reset d\n"
        f"dialog query d {d}/p2.txt\n"
        f"profile save prof {d}/p.json\n"
    )  # no exit: the end of the script ends it
    assert result.exit_code == 0, result.error_text  # failed commands do not change it
    (q1, q3) = events(phone.profile(), "GenieDialog_query")
    g1 = q1["num-generated-tokens"]["value"]
    n_past = n1 + g1
    assert n_past + n2 > size  # the test's own premise
    stderr = result.error_text
    assert f"[ERROR] Context limit exceeded ({n_past} + {n2} > {size})\n" in stderr
    assert red_lines(stderr) == ["Dialog does not exist: nosuch"]
    assert f"Context Size was exceeded.\n{RED}Failed to query.{RESET}" in stderr
    # After reset the same prompt fits; it is a first turn again (no EOS in front).
    assert q3["num-prompt-tokens"]["value"] == n2 - 1


def test_a_context_that_fills_while_generating_fails_the_query_and_adds_no_profile_event(
    app, tokenizer
):
    """As libGenie does (GenieDialog_query's ContextLimitException catch): [END], "Context
    Size was exceeded." on stderr, the query fails (genie-app's red line), and no
    GenieDialog_query event is added; the script goes on, and after a reset the dialog
    answers a prompt with room for its reply."""
    phone = app()
    d = phone.dir
    p1 = chatml("Write a long essay about phones.")
    phone.put("p1.txt", p1)
    phone.put("p2.txt", chatml("Hi"))
    n1 = count(tokenizer, p1)
    cfg = phone.config(size=n1 + 5)
    big = phone.config("big.json", size=4096)
    result = phone.run(
        "profile create prof\n"
        f"dialog config create cfg {cfg}\n"
        "dialog config bind profile cfg prof\n"
        "dialog create d cfg\n"
        f"dialog query d {d}/p1.txt\n"
        f"profile save prof {d}/p.json\n"
        f"dialog config create big {big}\n"
        "dialog config bind profile big prof\n"
        "dialog create e big\n"
        f"dialog query e {d}/p2.txt\n"
        f"profile save prof {d}/q.json\n"
    )
    assert result.exit_code == 0, result.error_text
    stderr = result.error_text
    assert f"Context Size was exceeded.\n{RED}Failed to query.{RESET}" in stderr
    (first, second) = replies(result.text)
    assert count(tokenizer, first) == 6  # room 5, + the token sampled by the failing step
    assert events(phone.profile(), "GenieDialog_query") == []
    assert len(events(phone.profile("q.json"), "GenieDialog_query")) == 1 and second


# ---- through a FIFO, held open by a writer -------------------------------------------------


class Session:
    """genie-app reading a FIFO (toybox mkfifo) that a `sleep` holds open, its stdout and
    stderr merged and read as they come; commands sent with `cat file >> fifo`."""

    def __init__(self, phone: App, side) -> None:  # noqa: ANN001 - a Device
        self.phone = phone
        self.side = side  # commands go here while the pump thread reads phone.dev's stream
        self.fifo = f"{phone.dir}/in.fifo"
        assert phone.dev.shell(f"mkfifo {self.fifo}").ok
        self.holder = phone.dev.stream_shell(f"echo $$; exec sleep 600 > {self.fifo}")
        self.app = phone.dev.stream_shell(phone.command(f"-s {self.fifo} 2>&1"))
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._pump, daemon=True).start()
        self.holder_pid = int(next(iter(self.holder)).split()[0])
        self.sent = 0

    def _pump(self) -> None:
        for chunk in self.app:
            with self.cond:
                self.buf += chunk
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, text: str) -> None:
        self.sent += 1
        path = f"{self.phone.dir}/cmd{self.sent}.txt"
        self.side.push_bytes(text.encode(), path)
        assert self.side.shell(f"cat {path} >> {self.fifo}").ok

    def text(self) -> str:
        with self.cond:
            return self.buf.decode("utf-8", "replace")

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while marker.encode() not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"no {marker!r} in {self.buf.decode(errors='replace')!r}")
                self.cond.wait(left)
            return self.buf.decode("utf-8", "replace")

    def wait_closed(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed:
                left = deadline - time.monotonic()
                assert left > 0, "genie-app did not end"
                self.cond.wait(left)

    def close(self) -> None:
        self.side.shell(f"kill {self.holder_pid} 2>/dev/null")
        self.holder.close()
        self.app.close()


def test_fifo_session_serves_turns_as_they_come_and_ends_when_the_writer_closes(app, tokenizer):
    phone = app()
    d = phone.dir
    cfg = phone.config()
    with phone.dev.side_channel() as side:
        _fifo_session(phone, Session(phone, side), side, d, cfg, tokenizer)


def _fifo_session(phone: App, s: Session, side, d: str, cfg: str, tokenizer) -> None:  # noqa: ANN001
    try:
        # A short command alone stays in the reader's buffer (a 4 KB refill): not run yet.
        s.send("profile create prof\n")
        time.sleep(1.0)
        assert "> profile create prof" not in s.text()
        s.send(
            PAD + f"dialog config create cfg {cfg}\n" + "dialog config bind profile cfg prof\n"
            "dialog create d cfg\n# turn-0\n" + PAD
        )
        s.wait_for("# turn-0\n")
        assert "> profile create prof\n" in s.text() and "> dialog create d cfg\n" in s.text()
        prompts = [chatml("First question."), followup("Second question.")]
        for i, prompt in enumerate(prompts, 1):
            side.push_bytes(prompt.encode(), f"{d}/p{i}.txt")
            s.send(f"dialog query d {d}/p{i}.txt\n# turn-{i}\n" + PAD)
            out = s.wait_for(f"# turn-{i}\n")
            assert f"[PROMPT]: {prompt}\n[BEGIN]: " in out
            assert out.rindex("[END]\n") < out.index(f"# turn-{i}\n")
        s.send(f"profile save prof {d}/p.json\n# saved\n" + PAD)
        s.wait_for("# saved\n")
        prof = json.loads(side.pull_bytes(f"{d}/p.json"))
        assert len(events(prof, "GenieDialog_create")) == 1
        q = events(prof, "GenieDialog_query")
        assert [e["num-prompt-tokens"]["value"] for e in q] == [
            count(tokenizer, prompts[0]),
            1 + count(tokenizer, prompts[1]),
        ]
        # A last line without padding, then the writer goes: EOF runs it and ends genie-app.
        s.send("# last words\n")
        assert "# last words" not in s.text()
        assert side.shell(f"kill {s.holder_pid}").ok
        s.wait_closed()
        assert s.text().endswith("# last words\n")
        assert s.app.exit_code == 0
    finally:
        s.close()


# ---- builds: abort only in the new one -----------------------------------------------------


def test_old_build_refuses_abort_and_version_new_build_aborts_an_async_query(app):
    old = app(profile={**PROFILE, "genie_app_build": "old"})
    result = old.run("version\ndialog abort d\nexit\n")
    assert result.exit_code == 0
    assert red_lines(result.error_text) == [
        "Unknown command: version.",
        "Ill-formatted command: dialog abort d.",
    ]
    help_text = old.dev.shell(old.command("-h")).text
    assert "SIMULATED" in help_text and "dialog abort" not in help_text

    new = app()
    d = new.dir
    new.put("long.txt", chatml("Write a long essay about the sea."))
    cfg = new.config()
    result = new.run(
        "version\nprofile create prof\n"
        f"dialog config create cfg {cfg}\ndialog config bind profile cfg prof\n"
        "dialog create d cfg\n"
        f"async\ndialog query d {d}/long.txt\nasync end\n"
        "sleep 300\ndialog abort d\nasync wait\n"
        f"profile save prof {d}/p.json\nexit\n"
    )
    assert result.exit_code == 0, result.error_text
    out = result.text
    assert re.search(r"^genie-app pid: \d+\nlibGenie\.so = 1\.14\.0\n", out, re.M)
    assert "SIMULATED genie-app build: new (qwenchat emulator)\n" in out
    assert "[ABORT]: " in out and "[END]" not in out
    (q,) = events(new.profile(), "GenieDialog_query")
    # The essay is at least 300 tokens; 300 ms at 15 tok/s x 1/0.02 is ~225 tokens.
    assert 0 < q["num-generated-tokens"]["value"] < 300
    assert "SIMULATED" in new.dev.shell(new.command("--help")).text


# ---- faults, prompts as words, output files, bad scripts ------------------------------------


def test_faults_fail_load_then_crash_after_n_tokens(app, phone_fault, tokenizer):
    phone = app()
    d = phone.dir
    cfg = phone.config()
    phone.put("p.txt", chatml("Hi."))
    phone_fault(phone.emu, "genie-fail-load")
    result = phone.run(f"dialog config create cfg {cfg}\ndialog create d cfg\nversion\n")
    assert result.exit_code == 0
    assert f"{RED}Failed to create the dialog.{RESET}" in result.error_text
    assert "(SIMULATED fault: fail_load)" in result.error_text
    assert "genie-app pid:" in result.text  # the script went on

    clear_faults(phone.emu.root, "genie-fail-load")
    phone_fault(phone.emu, "genie-crash-after", 3)
    result = phone.run(
        f"dialog config create cfg {cfg}\ndialog create d cfg\ndialog query d {d}/p.txt\nexit\n"
    )
    assert result.exit_code == 139  # SIGSEGV, as the shell reports a native crash
    assert "[END]" not in result.text
    streamed = result.text.split("[BEGIN]: ", 1)[1]  # flushed before the crash
    assert 0 < count(tokenizer, streamed) <= 3


def test_hang_before_first_token_holds_until_killed(app, phone_fault):
    phone = app()
    cfg = phone.config()
    phone_fault(phone.emu, "genie-hang-before-first-token")
    path = phone.put(
        "script.txt", f"dialog config create cfg {cfg}\ndialog create d cfg\ndialog query d hello\n"
    )
    stream = phone.dev.stream_shell("echo $$; " + phone.command(f"-s {path} 2>&1"))
    got = bytearray()
    pid = None
    deadline = time.monotonic() + 20
    it = iter(stream)
    while b"[PROMPT]: hello\n" not in got:
        got += next(it)
        if pid is None and b"\n" in got:
            pid = int(got.split(b"\n", 1)[0])
        assert time.monotonic() < deadline, got
    time.sleep(1.0)
    assert b"[BEGIN]" not in got
    with phone.dev.side_channel() as side:
        assert side.shell(f"kill -TERM {pid}").ok
        for chunk in it:
            got += chunk
        stream.close()
        assert b"[BEGIN]" not in got
        assert side.shell(f"kill -0 {pid}").exit_code != 0  # gone


def test_prompt_word_output_file_and_an_unbalanced_quote(app):
    phone = app()
    d = phone.dir
    cfg = phone.config()
    result = phone.run(
        f"dialog config create cfg {cfg}\ndialog create d cfg\n"
        f"dialog query d {d}/missing.txt\n"
        f'dialog query d "Say hi" {d}/out.txt\n'
        'dialog query d "unbalanced\n'
        "version\n"
    )
    assert result.exit_code == 1  # the quote ends the whole script
    out = result.text
    # A prompt file that cannot be opened IS the prompt (genie-app's rule).
    assert f"[PROMPT]: {d}/missing.txt\n[BEGIN]: " in out
    # OUTPUT_FILE: stdout has the prompt only; the file has the reply without markers.
    assert f'> dialog query d "Say hi" {d}/out.txt\n[PROMPT]: Say hi\n' in out
    reply = phone.dev.pull_bytes(f"{d}/out.txt").decode()
    assert reply and "[BEGIN]" not in reply and "[END]" not in reply
    assert out.count("[BEGIN]: ") == 1
    assert red_lines(result.error_text)[-1] == 'Cannot split string, asymmetric " found.'
    assert "genie-app pid:" not in out


def test_sampler_apply_config_changes_the_live_dialogs_sampling_and_keeps_its_context(app):
    """[SRC] `dialog getSampler D S` + `sampler config create C FILE` + `sampler applyConfig
    S C` (new build): the same prompt after a new seed gets another reply, the context goes
    on (no reset, no second load); a bad sampler config or an unknown sampler fails in red
    and the script goes on; the old build has no `sampler` command."""
    phone = app()
    d = phone.dir
    phone.put("p.txt", chatml("Same question."))
    phone.put("s7.json", json.dumps({"sampler": {"seed": 7, "temp": 0.5}}))
    phone.put("bad.json", json.dumps({"seed": 7}))
    cfg = phone.config()
    result = phone.run(
        "profile create prof\n"
        f"dialog config create cfg {cfg}\n"
        "dialog config bind profile cfg prof\n"
        "dialog create d cfg\n"
        "dialog getSampler d s\n"
        f"dialog query d {d}/p.txt\n"
        f"sampler config create c7 {d}/s7.json\n"
        "sampler applyConfig s c7\n"
        "sampler config free c7\n"
        f"dialog query d {d}/p.txt\n"
        f"sampler config create bad {d}/bad.json\n"
        "sampler applyConfig nosuch c7\n"
        f"profile save prof {d}/p.json\n"
        "exit\n"
    )
    assert result.exit_code == 0, result.error_text
    first, second = replies(result.text)
    assert first != second  # another seed, another reply
    # genie-app's own error ([line]: ...), and the library's (no line number).
    assert red_lines(result.error_text) == ["Sampler does not exist: nosuch"]
    assert "\033[91mFailed to create the sampler config.\033[0m" in result.error_text
    queries = events(phone.profile(), "GenieDialog_query")
    assert len(events(phone.profile(), "GenieDialog_create")) == 1
    n = [q["num-prompt-tokens"]["value"] for q in queries]
    assert n[1] == n[0] + 1  # continued: Genie's EOS first, the context kept

    old = app(profile={**PROFILE, "genie_app_build": "old"})
    result = old.run("sampler applyConfig s c\nexit\n")
    assert any("Unknown command: sampler." in line for line in red_lines(result.error_text))
