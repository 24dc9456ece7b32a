"""pytest plugin (`-p covmap`) for `make mutation`: records which test runs which line.

Coverage is measured per test (the test's node id as coverage's dynamic context, setup and
teardown included, so a fixture's work counts for the tests that use it) over the files named
in COVMAP_FILES, and written to COVMAP_OUT with each test's duration and the tests that
failed (the driver leaves those out: a test that fails unmutated cannot judge a mutant). The driver then judges a
mutant by only the tests that run its line. Lines that run only in a subprocess (the CLI run as
a process) have no test here; the driver falls back to the module's whole selection for them.

A module- or session-scoped fixture runs its lines inside the FIRST test that uses it, so
only that test is mapped to them: a later test judging the fixture's result is not selected
for those lines. The error is on the safe side (a mutant may survive that the file would
kill, never the reverse); a test file written to judge a module keeps such fixtures per test.
"""

from __future__ import annotations

import importlib
import json
import os
import time

import coverage
import pytest

_cov = None
_durations: dict[str, float] = {}
_failed: set[str] = set()


def pytest_configure(config):
    global _cov
    files = [f for f in os.environ.get("COVMAP_FILES", "").split(os.pathsep) if f]
    _cov = coverage.Coverage(data_file=None, include=files, branch=False)
    _cov.start()
    # Import the mutated modules now, outside any test: their import-time lines (defs,
    # decorators, class bodies, constants) must not be credited to whichever test happened
    # to import them first. Those lines then have no test of their own, and the driver
    # judges their mutants by the module's whole selection.
    for name in os.environ.get("COVMAP_MODULES", "").split(","):
        if name:
            importlib.import_module(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _cov.switch_context(item.nodeid)
    start = time.monotonic()
    yield
    _durations[item.nodeid] = time.monotonic() - start
    _cov.switch_context("")


def pytest_runtest_logreport(report):
    if report.failed:
        _failed.add(report.nodeid)


def pytest_unconfigure(config):
    _cov.stop()
    data = _cov.get_data()
    lines: dict[str, dict[str, list[str]]] = {}
    for path in data.measured_files():
        by_line = data.contexts_by_lineno(path)
        lines[os.path.realpath(path)] = {
            str(n): sorted(c for c in ctx if c) for n, ctx in by_line.items() if any(ctx)
        }
    with open(os.environ["COVMAP_OUT"], "w", encoding="utf-8") as fh:
        json.dump({"lines": lines, "durations": _durations, "failed": sorted(_failed)}, fh)
