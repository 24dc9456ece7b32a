"""Genie's formats: genie_config.json, genie-t2t-run's command line, stdout and profile.

Pure parsing and rendering: nothing here knows about ADB or the phone. Only ``config``
imports pydantic, so the stream, profile, command and failure modules stay cheap to import.
"""
