"""The emulated phone: a device-side ADB server on loopback with a confined shell and a
simulated genie-t2t-run. SIMULATED: it never pretends to be a phone.

Only the CLI (`qwenchat emulator`) and the tests import this package.
"""

SIMULATED_MODEL = "qwenchat emulator (SIMULATED)"
