"""Keeping the AI Hub API token out of every text that leaves a library call.

qai_hub and requests put what the server said into their exception messages (a 403 body is
the message of qai_hub's APIException) and requests quotes a bad header with ``repr``, so a
server or a proxy that echoes the ``Authorization`` header, or a token pasted with a stray
line break, puts the token into text we would print. Everything qai_hub says passes through
``Scrubber.guard`` at our transport seam: its exceptions' text, what it prints and what it
logs. Replacing the token is not enough when the text holds it escaped (``repr``, JSON,
URL-quoted) or in pieces (a multi-line value), so every such form is replaced.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Pieces of a token split on whitespace shorter than this are not secret on their own (and
# would mask ordinary words).
_MIN_PIECE = 8


def _forms(secret: str) -> set[str]:
    forms = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        quote(secret, safe=""),
        quote_plus(secret),
    }
    forms.update(p for p in re.split(r"\s+", secret) if len(p) >= _MIN_PIECE)
    return {f for f in forms if f}


class Scrubber:
    """Replaces a secret, in every form it can take in a message, with ``***``."""

    def __init__(self, *secrets: str | None) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and secret.strip():
                forms |= _forms(secret)
        # Longest first: a whole token before one of its pieces.
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
            if forms
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Around a library call: its prints are swallowed and its log records scrubbed.

        qai_hub prints progress and "Downloaded model to ..." lines to stdout and tqdm bars
        to stderr; none of it is ours to show. Log records are scrubbed where they are made
        (the record factory), so every handler -- a user's, pytest's -- sees clean text.
        """
        previous = logging.getLogRecordFactory()
        scrub = self

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: keep what can be shown
                message = str(record.msg)
            record.msg, record.args = scrub(message), None
            if record.exc_info:
                import traceback

                record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)))
                record.exc_info = None
            return record

        logging.setLogRecordFactory(factory)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
                io.StringIO()
            ):
                yield
        finally:
            logging.setLogRecordFactory(previous)
