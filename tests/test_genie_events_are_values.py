"""Stream events are values: equal when their fields are, hashable, and unchangeable once
emitted (a consumer can keep them in a set or a dict, and none can alter another's)."""

from __future__ import annotations

import dataclasses

import pytest

from qwenchat.genie import events as ev

SAMPLES = [
    ev.PidLine(42, "shell"), ev.Banner("1.14.0"), ev.PromptEcho("hi"), ev.Begin(), ev.Resume(),
    ev.Complete(), ev.ReplyText("x"), ev.End(), ev.Abort(), ev.ContextOverflow("full"),
    ev.Kpis(1, 2, 3.0, 4, 5.0), ev.OtherLine("log"),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_is_an_immutable_hashable_value(event):
    twin = dataclasses.replace(event)
    assert twin == event and hash(twin) == hash(event)
    assert len({event, twin}) == 1
    fields = dataclasses.fields(event)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, fields[0].name, None)


def test_a_pid_line_says_genie_unless_the_shell_printed_it():
    assert ev.PidLine(7).source == "genie"
    assert ev.PidLine(7) != ev.PidLine(7, "shell")
