"""Option checks shared by the commands: one rule per kind of value, so every option of that
kind refuses the same bad input the same way (issue #27: nan, inf and out-of-range numbers
were accepted by some options and refused by others).

Each returns a Typer callback; a bad value is Typer's usage error (exit 2, one line naming
the option), before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import typer


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    unit: str = "",
) -> Callable[[float | None], float | None]:
    """A finite number in [low, high] (or > above)."""
    parts = []
    if above is not None:
        parts.append(f"above {above:g}")
    if low is not None:
        parts.append(f"at least {low:g}")
    if high is not None:
        parts.append(f"at most {high:g}")
    want = "a number" + (f" of {unit}" if unit else "") + (" " + " and ".join(parts) if parts else "")

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        bad = (
            math.isnan(value) or math.isinf(value)
            or (above is not None and value <= above)
            or (low is not None and value < low)
            or (high is not None and value > high)
        )
        if bad:
            raise typer.BadParameter(f"must be {want}, not {value:g}")
        return value

    return check


def whole(low: int | None = None, high: int | None = None) -> Callable[[int | None], int | None]:
    """An integer in [low, high]."""

    def check(value: int | None) -> int | None:
        if value is None:
            return value
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"from {low} to {high}" if low is not None and high is not None else (
                f"at least {low}" if low is not None else f"at most {high}")
            raise typer.BadParameter(f"must be {span}, not {value}")
        return value

    return check


def phone_path(value: str) -> str:
    """A folder on the phone without control characters (a newline would be a second shell
    line however it is quoted, and the checksum tool escapes it); layout.PhoneLayout says
    the rest (absolute)."""
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise typer.BadParameter(f"must not hold control characters ({bad!r} found)")
    return value


def endpoint(value: str | None) -> str | None:
    """HOST:PORT (checked as `qwenchat connect` checks it); an empty one is an error, never
    'no --connect'."""
    if value is None:
        return value
    from qwenchat.device.endpoints import parse_endpoint
    from qwenchat.errors import UsageError

    try:
        parse_endpoint(value)
    except UsageError as exc:
        raise typer.BadParameter(exc.message) from None
    return value
