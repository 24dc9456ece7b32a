"""The emulated phone: a device-side ADB server on loopback in front of a phone whose shell
is Android's own (mksh and toybox), confined by the kernel (bubblewrap), with a simulated
genie-t2t-run. SIMULATED: it never pretends to be a phone.

Only the CLI (`qwenchat emulator`) and the tests import this package; it imports nothing of
the product (the CLI turns its errors into qwenchat's).
"""

SIMULATED_MODEL = "qwenchat emulator (SIMULATED)"


class EmulatorError(Exception):
    """Something the user must know, as one line (``message``) and what to do (``hint``).
    ``usage``: the request itself was wrong (the CLI exits 2)."""

    usage = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class PhoneStartError(EmulatorError):
    """The phone cannot start here; the message names the cause."""
