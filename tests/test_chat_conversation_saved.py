"""What a conversation is held with (system prompt, sampler settings) is saved when the user
changes it mid-chat, and a chat in which nothing was said leaves no conversation behind.

Judged in the store file itself, reopened after the chat (what `qwenchat history show` and its
JSON export read), with a real SQLite store and a chat on the emulated phone.

Fails for: a /system or /set after the first message that never reaches the store (history
would show the conversation held with the old prompt and settings), and a /system before
anything was said that saves an empty conversation into the history.
"""

from __future__ import annotations

from qwenchat.chat.session import open_chat_session
from qwenchat.chat.storage import ChatStorage
from qwenchat.store import open_store


def test_changes_mid_chat_are_saved_and_an_empty_chat_saves_nothing(bundled_phone, tmp_path):
    _, dev = bundled_phone()
    path = tmp_path / "store.db"
    with open_store(path) as store:
        s = open_chat_session(dev, store=store)
        s.set_system("Be brief.")
        s.update_settings(temp=0.5)
        assert ChatStorage(store).list_conversations() == []  # nothing said yet: no conversation

        s.send("Hello")
        s.set_system("Answer in French.")
        s.update_settings(top_k=7)
        chat_id = s.session_id

        s.clear()  # a new conversation, in which nothing is said
        s.set_system("Be terse.")

    with open_store(path) as store:
        chats = ChatStorage(store)
        assert [c.id for c in chats.list_conversations()] == [chat_id]
        saved = chats.conversation(chat_id)
    assert saved["system"] == "Answer in French."
    assert saved["settings"] == {"temp": 0.5, "top_k": 7}
    assert [(m["role"], m["content"]) for m in saved["messages"]][0] == ("user", "Hello")
