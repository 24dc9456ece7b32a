"""The emulated phone's genie-app. SIMULATED: no model runs here.

QAIRT's genie-app runs a script of commands (``dialog config create``, ``dialog create``,
``dialog query``, ``profile save``, ...), one line at a time, and keeps its dialogs (the loaded
model and its KV cache) alive between lines: fed through a FIFO it can serve a whole chat.
This is the emulator's copy of it, run like the genie-t2t-run sim: the SDK's ``genie-app``
stub execs ``/system/bin/qwenchat-genie-app-sim``, which runs ``genie_app_sim.__main__`` in the
same process. What it honours, and what is verified about the real one, is written down in
``qwenchat/genie/genie_app.md`` (its section 9 is this program's contract).

It reuses the genie-t2t-run sim's pieces (config parsing, the load checks and the tokenizer
behind ``genie_sim.main._create_dialog``, timing, replies, profile events, dialog state) so
both programs behave as one libGenie would. Like genie_sim, it imports nothing from
``qwenchat.genie``: it is another program with its own copy of the formats.
"""
