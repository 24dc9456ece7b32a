"""`qwenchat bench`: TTFT and decode tok/s across prompt lengths, against the published figures
of the run's model.

Modules: ``sweep`` (which lengths), ``prompts`` (exact-length prompts), ``trial`` (one
genie-t2t-run on the phone, read from the runner's record), ``records`` (the typed trial, plan,
context and run records every other module passes around), ``thermal`` (zones, battery,
cool-down), ``stats``, ``report`` / ``formats`` / ``compare`` / ``plot`` / ``termchart`` (the
printers), ``storage`` (the store's bench tables: JSON only there), ``progress`` (the live bar)
and ``runner`` (the sweep itself).
"""
