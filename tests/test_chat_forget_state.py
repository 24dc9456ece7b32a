"""A chat's saved dialog state (the KV cache Genie saves between turns: hundreds of MB on a
phone) is removed from the phone when the chat is done with it. When the phone refuses the
removal (its rm fails), the chat keeps the dialog as an orphan and removes it when the chat
ends, so nothing of a finished chat is left behind. Judged by the files in the emulated
phone's own /data, with its `fail-command rm` switch."""

from __future__ import annotations

from qwenchat.chat.session import open_chat_session
from qwenchat.emulator.faults import clear_faults

STATES = "data/local/tmp/qwenchat/states"  # the phone layout's states dir, under its root


def saved_dialogs(emu) -> list[str]:
    folder = emu.config.fs_root / STATES
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_dialog_the_phone_would_not_remove_is_removed_when_the_chat_ends(
    bundled_phone, phone_fault
):
    emu, dev = bundled_phone()
    s = open_chat_session(dev, engine="process")
    first = s.session_id
    assert s.send("Hello").text
    assert saved_dialogs(emu) == [first]

    phone_fault(emu, "fail-command", "rm")
    s.clear()  # a new conversation; the phone refuses to remove the old one's state
    assert saved_dialogs(emu) == [first]
    assert s.send("Hi again").text  # the chat goes on meanwhile
    second = s.session_id
    assert saved_dialogs(emu) == sorted([first, second])

    clear_faults(emu.root, "fail-command")
    s.end()
    assert saved_dialogs(emu) == []


def test_a_dialog_is_removed_at_once_when_the_phone_allows_it(bundled_phone):
    emu, dev = bundled_phone()
    s = open_chat_session(dev, engine="process")
    first = s.session_id
    assert s.send("Hello").text
    s.clear()
    assert saved_dialogs(emu) == []
    assert s.send("Hi again").text
    assert saved_dialogs(emu) == [s.session_id] and s.session_id != first
    s.end()
    assert saved_dialogs(emu) == []
