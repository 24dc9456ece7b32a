"""The chat session's paths that only a disagreement with Genie or the live-session engine
takes, through the emulated phone: our count says a turn fits and Genie refuses it as
beyond its context; a sampler change on a live genie-app session (its dialog's config holds
the sampler) against one on the per-turn engine (each genie-t2t-run reads a fresh config)."""

from __future__ import annotations

import pytest
from tiktoken_oracle import qwen_tiktoken_count

from qwenchat.chat.session import (
    ContextBudgetError,
    PromptMode,
    SamplerSettings,
    open_chat_session,
)


class _Undercounting:
    """A tokenizer that counts a quarter of the real tokens: the kind of disagreement a
    tokenizer that is not the phone's would cause."""

    def __init__(self, real):
        self.real = real

    def count(self, text: str) -> int:
        return self.real.count(text) // 4


def test_a_turn_genie_refuses_as_too_long_is_taken_back_and_offered_as_a_budget_error(
    bundled_phone,
):
    _, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=16))
    try:
        first = s.send("Hello.")
        assert first.text
        before = [(m.role, m.content) for m in s.messages]
        s.counter = _Undercounting(s.counter)
        long_text = "word " * 5000  # ~5000 real tokens: beyond the 4096-token context
        with pytest.raises(ContextBudgetError) as info:
            s.send(long_text)
        # Genie's refusal never reaches the transcript: the turn is taken back whole.
        assert [(m.role, m.content) for m in s.messages] == before
        # At least one token more than the whole context, whatever our count said.
        assert info.value.ctx_size == 4096
        assert info.value.needed == 4097
        assert "4097 tokens of context" in info.value.message
        # The next (short) turn still works.
        again = s.send("Still there?")
        assert again.text and s.messages[-2].content == "Still there?"
    finally:
        s.end()


F, R = PromptMode.FOLLOWUP, PromptMode.REBUILD


@pytest.mark.parametrize("engine, build, after_max, after_temp", [
    ("session", "old", R, R),  # an older genie-app: both are in the dialog's config
    ("session", "new", F, F),  # setMaxNumTokens, `sampler applyConfig` on the live dialog
    ("process", "new", F, F),
])
def test_a_sampler_change_rebuilds_only_an_older_live_sessions_dialog(
    bundled_phone, engine, build, after_max, after_temp
):
    _, dev = bundled_phone(profile={"genie_app_build": build})
    s = open_chat_session(dev, engine=engine, settings=SamplerSettings(max_tokens=8))
    try:
        assert s.engine.name == engine
        assert s.send("first").mode is PromptMode.REBUILD
        # max_tokens is not part of the dialog's sampler: the dialog stays (newer builds).
        s.update_settings(max_tokens=6)
        assert s.send("second").mode is after_max
        s.update_settings(temp=0.3)
        assert s.send("third").mode is after_temp
        assert s.send("fourth").mode is PromptMode.FOLLOWUP
    finally:
        s.end()


def _genie_runs(emu) -> int:
    from qwenchat.emulator.commandlog import read_records

    return sum(1 for r in read_records(emu.root)
               if r.get("kind") == "shell" and "genie-t2t-run" in r.get("what", "")
               and "pidof" not in r.get("what", ""))


def test_a_followup_whose_state_will_not_restore_is_rebuilt_once_transparently(bundled_phone):
    from qwenchat.emulator.genie_sim.state import STATE_FILE

    emu, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        s.send("first")
        state = s.engine.state_path(s.session_id)
        # The state is there (so the turn is planned as a follow-up) but unreadable.
        dev.shell(f"echo garbage > {state}/{STATE_FILE}")
        runs = _genie_runs(emu)
        second = s.send("second")
        assert second.mode is PromptMode.REBUILD and second.ok and second.text
        assert _genie_runs(emu) - runs == 2  # the failed restore, then the rebuild
        assert [m.role for m in s.messages] == ["user", "assistant"] * 2
    finally:
        s.end()


def test_a_rebuild_that_fails_is_not_run_again(bundled_phone):
    from qwenchat.emulator.config import Faults

    emu, dev = bundled_phone(faults=Faults(fail_load=True))
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        runs = _genie_runs(emu)
        result = s.send("hello")
        assert result.mode is PromptMode.REBUILD and not result.ok and not result.text
        assert _genie_runs(emu) - runs == 1
    finally:
        s.end()


def test_a_followup_stopped_before_its_first_word_is_not_rebuilt(bundled_phone, phone_fault):
    """Ctrl-C while Genie has said nothing yet: the turn ends cut, Genie ran once, and no
    empty reply is left in the conversation; only a follow-up that FAILED is rebuilt."""
    import threading

    from qwenchat.chat.session import StopReason

    emu, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        s.send("first")
        phone_fault(emu, "genie-hang-before-first-token")
        runs = _genie_runs(emu)
        timer = threading.Timer(3.0, s.cancel)
        timer.start()
        result = s.send("second")
        timer.join()
        assert result.stop is StopReason.CUT and not result.text
        assert result.mode is PromptMode.FOLLOWUP
        assert _genie_runs(emu) - runs == 1
        assert [m.role for m in s.messages] == ["user", "assistant", "user"]
    finally:
        s.end()


def test_after_a_reconnect_the_chat_counts_with_the_tokenizer_the_phone_now_holds(
    bundled_phone,
):
    """The bundle was pushed again while the chat was away: its tokenizer file changed (and
    the manifest with it), so the host's copy (cached under its SHA-256) is a different file
    and the counter follows."""
    import hashlib
    import posixpath

    from qwenchat.manifest import BundleManifest, FileEntry

    _, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        assert s.send("before").ok
        bundle = s.engine.bundle
        remote = posixpath.join(bundle.layout.bundle_dir, bundle.config.tokenizer_path)
        data = dev.pull_bytes(remote)
        manifest_path = bundle.layout.manifest_path
        assert s.counter.path.name == f"{hashlib.sha256(data).hexdigest()}.json"
        # Re-pushes whose digest sorts BELOW the held one, then ABOVE: a counter replaced by
        # comparing paths by order rather than by equality would stay stale in one of them.
        pad = 0
        for want_lower in (True, False):
            while True:
                pad += 1
                changed = data + b"\n" * pad
                digest = hashlib.sha256(changed).hexdigest()
                if (digest < s.counter.path.stem) is want_lower:
                    break
            dev.push_bytes(changed, remote)
            # As push-assets re-pushing it would: the manifest vouches for the new file (the
            # chat knows the tokenizer by the manifest's SHA-256, not by hashing it per run).
            listed = BundleManifest.from_json(dev.pull_bytes(manifest_path))
            key = posixpath.relpath(remote, bundle.layout.work_dir)
            listed.files[key] = FileEntry(len(changed), digest)
            dev.push_bytes(listed.to_json().encode(), manifest_path)
            s.reconnect(dev)
            assert s.counter.path.name == f"{digest}.json"
            assert s.counter.path.read_bytes() == changed
        assert s.send("after").ok
    finally:
        s.end()


def test_regenerate_counts_its_figures_from_when_enter_was_pressed(bundled_phone):
    """`entered_at` (host monotonic time of Enter) is where a regenerated reply's host
    figures start, as for send: a turn entered 30 s ago has waited at least 30 s."""
    import time

    _, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        s.send("hello")
        entered = time.monotonic() - 30.0
        again = s.regenerate(entered_at=entered)
        assert again.ok and again.figures.host_total_s >= 30.0
        assert again.figures.host_first_token_s >= 30.0
        now = s.regenerate()  # default: from now
        assert now.ok and now.figures.host_total_s < 30.0
    finally:
        s.end()


@pytest.fixture(scope="module")
def tiktoken_count():
    """An independent count: tiktoken on Qwen's own ranks (no qwenchat tokenizer code)."""
    return qwen_tiktoken_count


def test_a_regenerate_that_no_longer_fits_offers_to_drop_the_oldest_turn(bundled_phone,
                                                                          tiktoken_count):
    """/regen rebuilds the whole conversation: with max_tokens raised so that prompt + max
    tokens is one past the context, it is refused before anything is sent, naming the tokens
    needed (counted here with tiktoken over the ChatML written out by hand) and offering to
    drop the one oldest turn (which frees more than one token)."""
    _, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        a_text, b_text = "alpha " * 600, "beta " * 600
        a = s.send(a_text)
        s.send(b_text)
        prompt = (
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            f"<|im_start|>user\n{a_text}<|im_end|>\n"
            f"<|im_start|>assistant\n{a.text}<|im_end|>\n"
            f"<|im_start|>user\n{b_text}<|im_end|>\n<|im_start|>assistant\n"
        )
        p = tiktoken_count(prompt)
        s.update_settings(max_tokens=4097 - p)
        before = [(m.role, m.content) for m in s.messages]
        with pytest.raises(ContextBudgetError) as info:
            s.regenerate()
        assert (info.value.needed, info.value.ctx_size, info.value.drop_turns) == (4097, 4096, 1)
        assert [(m.role, m.content) for m in s.messages] == before  # nothing was touched
    finally:
        s.end()
