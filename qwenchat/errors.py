"""The one error hierarchy of qwenchat.

Every error a user can cause or meet carries a message (what is wrong) and a hint (what to
do). The CLI turns it into one red line plus the hint and the error's exit code; the
traceback only shows with ``--debug``.
"""

from __future__ import annotations


class QwenchatError(Exception):
    """Base of every error the CLI reports as one line."""

    exit_code = 1
    default_hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(QwenchatError):
    """The command line asks for something that cannot be done as written."""

    exit_code = 2


class ConfigError(QwenchatError):
    """A Genie config or other input file is malformed."""


class DeviceError(QwenchatError):
    """The phone cannot be reached or refused what we asked."""


class NoDeviceError(DeviceError):
    default_hint = (
        "Plug in a phone with USB debugging on, or `qwenchat connect HOST:PORT` "
        "(try `qwenchat emulator start` for the simulated phone)."
    )


class DeviceUnauthorizedError(DeviceError):
    default_hint = 'Unlock the phone and accept "Allow USB debugging?", then try again.'


class SeveralDevicesError(DeviceError):
    default_hint = "Choose one with -s SERIAL (or set ANDROID_SERIAL)."


class DeviceLostError(DeviceError):
    """The link to the phone dropped (cable out, phone rebooted, emulator stopped).

    Its own exit code (EX_TEMPFAIL): a script can tell "try again when the phone is back"
    from a failure (1) or an interrupt (130).
    """

    exit_code = 75
    default_hint = "Check the cable or network link; reconnect and try again."


class DeviceTimeoutError(DeviceError):
    """The phone sent nothing within a bound (the link may still be up: ask it)."""


class DeviceCommandError(DeviceError):
    """A shell command on the phone failed."""


class DeviceStorageError(DeviceError):
    default_hint = "Free space on the phone (`qwenchat clean`) or choose another --device-dir."


class PhoneFullError(DeviceStorageError):
    """The phone's storage filled up while qwenchat wrote to it ("No space left on device").

    Its own failure, never a lost phone: the link is fine, and trying again only helps once
    something is removed (exit 1, as any refused action)."""

    default_hint = (
        "The phone's storage is full. `qwenchat clean` removes what qwenchat left in its work "
        "dir (temp files, dialog states, files of older bundles); remove other big files "
        "(`adb shell df -h /data/local/tmp`, `adb shell du -s /data/local/tmp/*`), then run "
        "the same command again."
    )


NO_SPACE_TEXT = "no space left on device"  # strerror(ENOSPC), as adbd and every shell tool say it


def says_phone_full(text: str | None) -> bool:
    """Whether a message from the phone (adbd's sync FAIL, a shell's stderr) is ENOSPC."""
    return text is not None and NO_SPACE_TEXT in text.lower()


class BundleError(QwenchatError):
    """A Genie bundle on the host or the phone is missing files or is inconsistent."""


class GenieError(QwenchatError):
    """genie-t2t-run failed on the phone."""


class GenieTimeoutError(GenieError):
    """Genie gave no output within a wait bound and was stopped (exit code as timeout(1))."""

    exit_code = 124


class ContextOverflowError(GenieError):
    default_hint = "Shorten the prompt, lower --max-tokens, or drop older turns (/clear)."


class StoreError(QwenchatError):
    """The local SQLite store cannot be opened or read."""


class HubError(QwenchatError):
    """Qualcomm AI Hub refused or could not be reached."""
