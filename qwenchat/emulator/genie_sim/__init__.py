"""The emulated phone's genie-t2t-run. SIMULATED: no model runs here.

A program that runs INSIDE the emulated phone: when the phone's shell executes the stub
genie-t2t-run that ``qwenchat.emulator.bundle`` makes, the stub execs the emulator's launcher
(``/system/bin/qwenchat-genie-sim``, ``emulator.programs``), which execs the phone's lent
Python on ``genie_sim.__main__`` in that same process: the pid the shell knew, the argv, cwd
and environment it was given, the phone's files as uid 2000 sees them. What a real binary
would learn from the hardware (SoC, speed, faults) it asks the emulator over
``/dev/socket/qwenchat`` (``emulator_link``), where it also reports the heat of its work.
It honours the real binary's command line, stdout format, error texts, profile JSON and exit
codes (QAIRT 2.40 ``examples/Genie/genie-t2t-run``), tokenizes with the bundle's real
tokenizer.json and paces itself on a device profile scaled by the emulator's time scale.

It deliberately imports nothing from ``qwenchat.genie``: it is "another program", so its
formats and default figures are its own copy.
"""
