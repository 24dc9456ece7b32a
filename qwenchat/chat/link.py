"""The chat's way back to its phone after the phone vanished.

An interactive chat outlives its phone: when the link drops, what was printed is stored and
the chat stays open; the next message reopens the phone the way the chat first found it
(the same -s / --connect / transport selection, ``qwenchat.device.select.open_device``),
checks it is the same phone (serial) holding the same model, and the conversation is rebuilt
from the transcript there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qwenchat.errors import DeviceLostError, QwenchatError

if TYPE_CHECKING:
    from qwenchat.chat.session import ChatSession
    from qwenchat.device.base import Device


class PhoneLink:
    def __init__(self, reopen: Callable[[], Device] | None = None) -> None:
        self.reopen = reopen
        self._opened: list[Device] = []

    def reconnect(self, session: ChatSession) -> None:
        """Reopen the phone and move ``session`` onto it; raises when it is still gone (or
        another phone answered), leaving the session as it was."""
        if self.reopen is None:
            raise DeviceLostError(
                "the phone is gone",
                hint="End the chat (Ctrl-D) and start it again when the phone is back.",
            )
        device = self.reopen()
        try:
            session.reconnect(device)
        except BaseException:
            _close(device)
            raise
        self._opened.append(device)

    def close(self) -> None:
        """Close the devices this link opened (the first one belongs to the caller)."""
        while self._opened:
            _close(self._opened.pop())


def _close(device: Device) -> None:
    try:
        device.close()
    except (OSError, QwenchatError):
        pass


__all__ = ["PhoneLink"]
