"""The emulated phone's genie-t2t-run. SIMULATED: no model runs here.

A separate program (``python -m qwenchat.emulator.genie_sim ARGS``) started by the emulated
phone's shell when it executes the stub genie-t2t-run that ``qwenchat.emulator.bundle`` makes.
It honours the real binary's command line, stdout format, error texts, profile JSON and exit
codes (QAIRT 2.40 ``examples/Genie/genie-t2t-run``), tokenizes with the bundle's real
tokenizer.json and paces itself on a device profile scaled by the emulator's time scale.

It deliberately imports nothing from ``qwenchat.genie``: it is "another program", so its
formats and default figures are its own copy.
"""
