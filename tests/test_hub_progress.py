"""The download display: plain lines (what a log or a pipe gets) with a scripted clock, and
the choice between them and the live bar."""

from __future__ import annotations

import io

from qwenchat.hub.progress import PlainProgress, RichProgress, download_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(steps, total=10_000_000, start=0, ok=True) -> list[str]:
    out, clock = io.StringIO(), Clock()
    p = PlainProgress(out, clock)
    p.begin("f.zip", total, start)
    for t, done in steps:
        clock.now = t
        p.update(done)
    p.end(ok)
    return out.getvalue().splitlines()


def test_plain_lines_every_tenth_with_rate_and_eta():
    lines = _run([(0.5, 500_000), (1.0, 1_200_000), (3.0, 3_500_000), (3.5, 3_900_000),
                  (5.0, 10_000_000)])  # fmt: skip
    assert lines == [
        "downloading f.zip (10.0 MB)",
        "f.zip: 12% (1.2 MB of 10.0 MB), 1.2 MB/s, ETA 7 s",
        "f.zip: 35% (3.5 MB of 10.0 MB), 1.2 MB/s, ETA 6 s",
        "downloaded f.zip: 10.0 MB in 5 s (2.0 MB/s)",
    ]


def test_resumed_download_counts_only_this_runs_bytes():
    lines = _run([(1.0, 5_000_000), (2.0, 6_000_000)], start=4_000_000, ok=False)
    assert lines == [
        "resuming f.zip at 4.0 MB of 10.0 MB",
        "f.zip: 50% (5.0 MB of 10.0 MB), 1.0 MB/s, ETA 5 s",
        "f.zip: 60% (6.0 MB of 10.0 MB), 1.0 MB/s, ETA 4 s",
        "f.zip: stopped at 6.0 MB",
    ]


def test_unknown_size_and_long_durations():
    lines = _run([(75.0, 300_000_000)], total=None)
    assert lines == [
        "downloading f.zip (size unknown)",
        "f.zip: 300.0 MB, 4.0 MB/s",
        "downloaded f.zip: 300.0 MB in 1 min 15 s (4.0 MB/s)",
    ]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_lines_in_a_pipe():
    assert isinstance(download_progress(io.StringIO()), PlainProgress)
    assert isinstance(download_progress(_Tty()), RichProgress)
