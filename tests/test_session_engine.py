"""The session engine (one genie-app keeps the dialog alive) on the emulated phone.

Oracles never come from the engine: the phone's process table (``ps``), the emulated phone's
own log of the commands it ran, the device profile's numbers and hand-written texts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from qwenchat.emulator.commandlog import read_records
from qwenchat.emulator.faults import clear_faults
from qwenchat.layout import PhoneLayout
from qwenchat.runner import open_engine
from qwenchat.runner.request import QueryRequest, SamplerSettings, WaitBounds
from qwenchat.runner.session import SessionUnavailable

LAYOUT = PhoneLayout()
GENIE_APP = f"{LAYOUT.bin_dir}/genie-app"
BOUNDS = WaitBounds(first_token=120, stall=60)
PROMPT = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def genie_apps(dev) -> dict[int, str]:
    """pid -> command line of every genie-app running on the phone, from its ps."""
    found = {}
    for line in dev.shell("ps -A -o PID,ARGS").text.splitlines():
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and args.strip().startswith("genie-app"):
            found[int(pid)] = args.strip()
    return found


def shell_lines(emu) -> list[str]:
    return [r["what"] for r in read_records(emu.root) if r.get("kind") in ("shell", "stdin") and "what" in r]


def ask(engine, prompt=PROMPT, *, max_tokens=16, on_text=None, **kw):
    request = QueryRequest(prompt, SamplerSettings(max_tokens=max_tokens), bounds=BOUNDS, **kw)
    return engine.query(request, on_text)


def test_auto_falls_back_to_per_turn_when_genie_app_is_missing(bundled_phone):
    emu, dev = bundled_phone()
    assert dev.shell(f"rm {GENIE_APP}").ok
    engine = open_engine(dev, LAYOUT, kind="auto")
    assert engine.name == "process"
    # Capabilities callers ask instead of the name: a process per turn keeps nothing loaded,
    # a cut kills it, each turn reads its own sampler, no runtime reported before a query.
    assert not engine.keeps_model_loaded and not engine.can_abort
    assert engine.sampler_per_query and engine.libgenie_version is None
    assert len(engine.notes) == 1 and "no genie-app on the phone" in engine.notes[0]
    with pytest.raises(SessionUnavailable, match="no genie-app"):
        open_engine(dev, LAYOUT, kind="session")
    assert genie_apps(dev) == {}


def test_auto_falls_back_when_genie_app_fails_its_probe(bundled_phone):
    """A genie-app that cannot start (a broken runtime) fails the probe: per-turn engine."""
    emu, dev = bundled_phone()
    broken = "#!/system/bin/sh\necho 'CANNOT LINK EXECUTABLE: libGenie.so not found' >&2\nexit 1\n"
    dev.push_bytes(broken.encode(), GENIE_APP, mode=0o755)
    engine = open_engine(dev, LAYOUT, kind="auto")
    assert engine.name == "process"
    assert "libGenie.so not found" in engine.notes[0]
    record = ask(engine)  # the per-turn engine still answers
    assert record.ok and record.text


def test_one_genie_app_serves_every_turn_and_loads_once(bundled_phone):
    profile = {"init_ms": 2000, "prefill_chunk_ms": 50, "chunk_tokens": 128, "decode_tok_s": 200}
    emu, dev = bundled_phone(profile=profile)
    engine = open_engine(dev, LAYOUT, kind="session")
    try:
        assert engine.name == "session"
        pids = set(genie_apps(dev))
        assert len(pids) == 1
        first = ask(engine, dialog="chat")
        follow = "\n<|im_start|>user\nand again<|im_end|>\n<|im_start|>assistant\n"
        later = [ask(engine, follow, dialog="chat", follow_up=True) for _ in range(2)]
        assert first.ok and all(r.ok for r in later)
        assert set(genie_apps(dev)) == pids  # the same process all along
        creates = [w for w in shell_lines(emu) if "dialog create" in w]
        assert len(creates) == 1
        # The load: Genie's init-time on the first reply only, at least the device profile's
        # 2000 ms at the fixture's time scale 0.02.
        assert first.profile.init_time_us >= 2000 * 0.02 * 1000
        assert first.load_host_s is not None and first.load_host_s >= 2000 * 0.02 / 1000
        assert all(r.profile.init_time_us is None and r.load_host_s is None for r in later)
        # Context kept: each follow-up prefills only its own turn (+ the EOS Genie pushes),
        # the same count both times, fewer than the first prompt.
        counts = [r.profile.num_prompt_tokens for r in later]
        assert counts[0] == counts[1] < first.profile.num_prompt_tokens + counts[0]
    finally:
        engine.close()
    assert genie_apps(dev) == {}
    assert "session-" not in dev.shell(f"ls {LAYOUT.tmp_dir}").text


def _records(emu, kind: str) -> list[dict]:
    return [r for r in read_records(emu.root) if r.get("kind") == kind]


def test_every_script_line_travels_on_one_open_stream(bundled_phone):
    """A turn's lines go to one `cat` fed on its stdin, not a new shell per turn (each cost
    8-44 ms on the way to the first token)."""
    emu, dev = bundled_phone()
    engine = open_engine(dev, LAYOUT, kind="session")
    try:
        follow = "\n<|im_start|>user\nand again<|im_end|>\n<|im_start|>assistant\n"
        replies = [ask(engine, dialog="c")] + [
            ask(engine, follow, dialog="c", follow_up=True) for _ in range(2)
        ]
        assert all(r.ok for r in replies)
    finally:
        engine.close()
    queries = [r for r in _records(emu, "stdin") if r["what"].startswith("dialog query")]
    assert len(queries) == 3
    writer_ids = {r["command"] for r in queries}
    assert len(writer_ids) == 1  # one writer for the whole session
    (writer,) = [r for r in _records(emu, "shell") if r["id"] in writer_ids]
    assert "exec cat 1<>" in writer["what"] and "session-" in writer["what"]
    assert not any("dialog" in r["what"] for r in _records(emu, "shell"))
    assert genie_apps(dev) == {}  # `exit` reached genie-app through the writer


def test_a_phone_without_shell_v2_chats_with_the_per_turn_engine(bundled_phone):
    """An adbd before shell protocol v2 can neither feed a command's stdin nor end a stream
    without holding bytes back: no session is tried, chat says why and runs per turn."""
    emu, dev = bundled_phone(shell_v2=False)
    assert not dev.has_shell_v2
    engine = open_engine(dev, LAYOUT, kind="auto")
    assert engine.name == "process"
    assert len(engine.notes) == 1 and "shell protocol v2" in engine.notes[0]
    assert ask(engine).ok
    with pytest.raises(SessionUnavailable, match="shell protocol v2"):
        open_engine(dev, LAYOUT, kind="session")
    assert genie_apps(dev) == {}
    assert not any("genie-app -s" in r["what"] for r in _records(emu, "shell"))


def test_user_text_never_reaches_a_shell_command_line(bundled_phone):
    emu, dev = bundled_phone()
    secret = "$(touch /data/local/tmp/pwned); `id` 'quoted' \"dq\" \\ ; | & zebra-7731"
    engine = open_engine(dev, LAYOUT, kind="session")
    try:
        record = ask(engine, f"<|im_start|>user\n{secret}<|im_end|>\n<|im_start|>assistant\n")
        assert record.ok
    finally:
        engine.close()
    assert not any("zebra-7731" in w for w in shell_lines(emu))
    assert dev.stat("/data/local/tmp/pwned") is None


def _cancel_after_text(engine, n_chunks: int = 3):
    got: list[str] = []

    def on_text(text: str) -> None:
        got.append(text)
        if len(got) == n_chunks:
            threading.Thread(target=engine.cancel).start()

    return got, on_text


def test_cancel_on_a_new_build_aborts_and_keeps_the_model_loaded(bundled_phone):
    profile = {"genie_app_build": "new", "decode_tok_s": 20}
    emu, dev = bundled_phone(profile=profile)
    engine = open_engine(dev, LAYOUT, kind="session")
    try:
        ask(engine, dialog="c")  # loads
        pid = engine.pid
        # What the capabilities promise is what happens below: abort, model kept loaded.
        assert engine.keeps_model_loaded and engine.can_abort and engine.sampler_per_query
        got, on_text = _cancel_after_text(engine)
        cut = ask(engine, dialog="c", max_tokens=400, on_text=on_text)
        assert cut.outcome == "cut"
        assert cut.text.startswith("".join(got[:3]))
        assert "dialog abort" not in cut.text  # the abort's echo is not part of the reply
        assert any("dialog abort qwenchat" in w for w in shell_lines(emu))
        assert set(genie_apps(dev)) == {pid}  # aborted, not killed
        again = ask(engine, dialog="c")
        assert again.ok and again.load_host_s is None  # no second load
        assert len([w for w in shell_lines(emu) if "dialog create" in w]) == 1
    finally:
        engine.close()


def test_cancel_on_an_old_build_kills_and_the_next_turn_starts_again(bundled_phone):
    emu, dev = bundled_phone(profile={"genie_app_build": "old", "decode_tok_s": 20})
    engine = open_engine(dev, LAYOUT, kind="session")
    try:
        ask(engine, dialog="c")
        pid = engine.pid
        assert engine.build == "old"
        # No abort on this build (a cut kills), and a sampler change needs a new dialog.
        assert engine.keeps_model_loaded and not engine.can_abort
        assert not engine.sampler_per_query
        got, on_text = _cancel_after_text(engine)
        cut = ask(engine, dialog="c", max_tokens=400, on_text=on_text)
        assert cut.outcome == "cut"
        assert pid not in genie_apps(dev)  # killed: no abort on this build
        assert not engine.has_dialog("c")  # the chat must rebuild from its transcript
        again = ask(engine, dialog="c")
        assert again.ok and again.load_host_s is not None  # a new genie-app loads again
        assert set(genie_apps(dev)) == {engine.pid} != {pid}
    finally:
        engine.close()


ORPHAN_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from qwenchat.device.direct import DirectDevice
    from qwenchat.layout import PhoneLayout
    from qwenchat.runner import open_engine, session
    # The emulated adbd hangs up (SIGHUP) a killed client's shells, as adbd does, and
    # genie-app dies of it: an orphan needs a genie-app that survives its stream (SIGHUP
    # ignored, inherited through exec), as on a phone whose adbd keeps the shell alive.
    launch = session.launch_command
    session.launch_command = lambda *a: "trap '' HUP; " + launch(*a)
    dev = DirectDevice.connect_tcp("127.0.0.1", int(sys.argv[1]), auth_timeout=5)
    engine = open_engine(dev, PhoneLayout(), kind="session")
    print(engine.pid, flush=True)
    time.sleep(600)
    """
)


def test_a_killed_qwenchat_leaves_an_orphan_the_next_run_ends(bundled_phone, tmp_path):
    emu, dev = bundled_phone()
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(emu.port)], stdout=subprocess.PIPE, text=True
    )
    try:
        orphan = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)  # as `kill -9`: no close(), no clean-up
        proc.wait()
    assert orphan in genie_apps(dev)
    # Another live owner's session (this test process's) is not touched by the sweep.
    mine = open_engine(dev, LAYOUT, kind="session")
    try:
        assert orphan not in genie_apps(dev)
        assert set(genie_apps(dev)) == {mine.pid}
        assert dev.shell(f"ls {LAYOUT.tmp_dir}").text.count(".pid") == 1
    finally:
        mine.close()


def test_a_live_owners_session_is_not_swept(bundled_phone):
    emu, dev = bundled_phone()
    # A session whose owner tag names a live process of this host (this test's parent).
    from qwenchat.runner import session as session_module
    from qwenchat.runner.session_files import owner_tag

    other = session_module.SessionEngine(open_engine(dev, LAYOUT, kind="process").bundle)
    other.owner_tag = owner_tag(os.getppid())
    other.start()
    try:
        # Not swept; and since it holds the phone's model, a second load is refused naming it
        # (issue 31: two models loaded at once do not fit a phone).
        from qwenchat.runner.occupancy import PhoneBusyError

        with pytest.raises(PhoneBusyError) as info:
            open_engine(dev, LAYOUT, kind="session")
        assert f"genie-app pid {other.pid}, started by qwenchat pid {os.getppid()}" in str(
            info.value
        )
        assert set(genie_apps(dev)) == {other.pid}
    finally:
        other.close()
    assert genie_apps(dev) == {}


def test_clean_ends_every_session(bundled_phone, capsys):
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    emu, dev = bundled_phone()
    engine = open_engine(dev, LAYOUT, kind="session")
    pid = engine.pid
    assert pid in genie_apps(dev)
    code = run_app(app, ["clean", "--connect", emu.address, "--transport", "direct"])
    assert code == 0
    assert "ended 1 genie-app session(s)" in capsys.readouterr().out
    assert genie_apps(dev) == {}
    engine.close()  # finds nothing left: never raises


def test_close_ends_a_genie_app_that_no_longer_reads_its_script(bundled_phone):
    """`exit` cannot be read by a stopped process: close() waits its bound, then kills."""
    emu, dev = bundled_phone()
    engine = open_engine(dev, LAYOUT, kind="session")
    assert dev.shell(f"kill -STOP {engine.pid}").ok
    engine.close()
    assert genie_apps(dev) == {}


# ----- the stream cutting, without a phone (hand-written bytes, split at every position)
TURN = (
    b"> async\n> async end\n> dialog query qwenchat /t/session-x-2.txt\n[PROMPT]: hi [END]\n\n"
    b"[BEGIN]: a reply with [END]\n in it[END]\n"
    b"> profile save qwenchat-profile /t/session-x-2.json\n"
)
SAVE_ECHO = b"> profile save qwenchat-profile /t/session-x-2.json\n"


@pytest.mark.parametrize("cut", range(1, len(TURN)))
def test_a_turn_ends_at_the_echo_after_it_however_the_bytes_come(cut):
    from qwenchat.genie.events import End, ReplyText
    from qwenchat.runner.session_stream import TurnReader

    reader = TurnReader("hi [END]\n", SAVE_ECHO)
    events = reader.feed(TURN[:cut])
    assert not reader.done or cut >= len(TURN) - 1
    events += reader.feed(TURN[cut:] + b"> async wait\n")
    assert reader.done and reader.rest == b"> async wait\n"
    text = "".join(e.text for e in events if isinstance(e, ReplyText))
    assert text == "a reply with [END]\n in it"
    assert sum(isinstance(e, End) for e in events) == 1


@pytest.mark.parametrize("cut", range(1, 40))
def test_the_abort_echo_is_cut_out_of_a_reply_however_it_is_split(cut):
    from qwenchat.runner.session_stream import Cutter

    stream = b"one two > dialog abort qwenchat\nthree > dia"
    cutter = Cutter(b"> dialog abort qwenchat\n")
    out = cutter.feed(stream[:cut]) + cutter.feed(stream[cut:]) + cutter.flush()
    assert out == b"one two three > dia"


def test_a_genie_that_never_answers_is_stopped_at_the_bound_and_the_next_turn_starts_again(
    bundled_phone, phone_fault
):
    """Every wait on the phone has a bound: a hung query ends TIMED_OUT, its genie-app is gone
    from the phone's process table, and the next query starts a fresh one."""
    emu, dev = bundled_phone()
    engine = open_engine(dev, LAYOUT, kind="session")
    try:
        assert ask(engine, dialog="chat").ok  # loaded and answering
        first_pid = set(genie_apps(dev))
        phone_fault(emu, "genie-hang-before-first-token")
        request = QueryRequest(
            PROMPT, SamplerSettings(max_tokens=8), bounds=WaitBounds(first_token=3, stall=3)
        )
        record = engine.query(request)
        assert record.outcome.name == "TIMED_OUT", record
        assert "Genie gave no reply within 3 s" in record.error
        assert genie_apps(dev) == {}
        assert clear_faults(emu.root, "genie-hang-before-first-token")
        again = ask(engine)
        assert again.ok and again.text
        assert set(genie_apps(dev)) and set(genie_apps(dev)) != first_pid
    finally:
        engine.close()
