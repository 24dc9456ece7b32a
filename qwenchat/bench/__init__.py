"""`qwenchat bench`: TTFT and decode tok/s across prompt lengths, against the published figures.

Modules: ``sweep`` (which lengths), ``prompts`` (exact-length prompts), ``trial`` (one
genie-t2t-run on the phone), ``thermal`` (zones, battery, cool-down), ``stats``, ``report``,
``storage`` (the store's bench tables) and ``runner`` (the sweep itself).
"""
