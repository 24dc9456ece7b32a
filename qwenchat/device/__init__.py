"""How qwenchat reaches a phone over ADB. Knows ADB, nothing of Genie."""
