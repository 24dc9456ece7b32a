"""pytest plugin (`-p mutbound`) for `make mutation`: a time bound per test, not per run.

The driver writes each selected test's bound (TIMEOUT_FACTOR x its unmutated time, fixtures
included, + slack) to the JSON file named by MUTBOUND_JSON; this plugin gives each test that
bound as a pytest-timeout marker. A mutant that hangs one test is then stopped at that test's
own bound (seconds for most), not at the sum of every selected test's, and pytest-timeout's
"Timeout" in the output tells the driver it was a timeout, not an assertion.
"""

from __future__ import annotations

import json
import os

import pytest


def pytest_collection_modifyitems(config, items):
    bounds = json.loads(open(os.environ["MUTBOUND_JSON"], encoding="utf-8").read())
    for item in items:
        seconds = bounds.get(item.nodeid)
        if seconds is not None:
            # Prepended, so it is the closest timeout marker (a test's own would come after).
            item.add_marker(pytest.mark.timeout(seconds), append=False)
