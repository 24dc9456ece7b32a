"""What a finished bench run's exit status says, so scripts can tell the cases apart.

    0  ran clean: every measured trial succeeded
    1  failed: at least one prompt length has no successful trial (its line names them)
    3  ran with some failures: every length has a result, but some trials failed

(Other statuses are the CLI's usual ones: 2 usage, 75 phone lost, 130/143 stopped.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenchat.bench.records import RunRecord

CLEAN = 0
FAILED = 1
SOME_FAILURES = 3


@dataclass(frozen=True)
class RunVerdict:
    code: int
    message: str | None  # one line for stderr (None when clean)
    hint: str | None = None


def run_verdict(run: RunRecord) -> RunVerdict:
    measured = run.measured
    tried = Counter(t.length for t in measured)
    good = Counter(t.length for t in measured if t.ok)
    failed = [t for t in measured if not t.ok]
    empty = sorted(length for length in tried if good[length] == 0)
    first_error = next((t.error for t in failed if t.error), None)
    why = f" (first error: {first_error})" if first_error else ""
    if empty:
        names = ", ".join(f"{n} ({tried[n]} tried)" for n in empty)
        return RunVerdict(
            FAILED,
            f"run {run.id}: no successful trial at prompt length {names}{why}",
            "`qwenchat results show last` lists each trial's error; `qwenchat doctor` checks "
            "the phone.",
        )
    if failed:
        by_length = Counter(t.length for t in failed)
        names = ", ".join(f"{n}: {by_length[n]}" for n in sorted(by_length))
        return RunVerdict(
            SOME_FAILURES,
            f"run {run.id}: {len(failed)} of {len(measured)} trials failed ({names}); the "
            f"figures use the successful ones{why}",
        )
    return RunVerdict(CLEAN, None)
