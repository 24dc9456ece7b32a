"""The token scrubber: every form a token takes in a message, and the guard around library
calls (hand-written expected strings)."""

from __future__ import annotations

import logging

from qwenchat.hub.scrub import Scrubber


def test_scrubber_masks_every_form_of_the_token():
    token = "qh-7f3e9c1d\n2b4a/SECRET+x"
    scrub = Scrubber(token)
    assert scrub(f"header value: 'token {token!r}'") == "header value: 'token '***''"
    assert scrub('{"t": "qh-7f3e9c1d\\n2b4a/SECRET+x"}') == '{"t": "***"}'
    assert scrub("?t=qh-7f3e9c1d%0A2b4a%2FSECRET%2Bx") == "?t=***"
    assert scrub("line one qh-7f3e9c1d then 2b4a/SECRET+x") == "line one *** then ***"
    assert scrub("nothing secret here") == "nothing secret here"
    # Non-ASCII and a short second line: only the repr() form holds the whole token.
    odd = "qh-7f3e9c1dé\n2b4a"
    assert Scrubber(odd)(f"InvalidHeader: {odd!r}") == "InvalidHeader: '***'"
    assert Scrubber(None, "")("qh-7f3e9c1d") == "qh-7f3e9c1d"


def test_scrubber_guard_cleans_log_records_and_swallows_prints(caplog, capsys):
    token = "qh-FAKE-7f3e9c1d2b4a-SECRET"
    caplog.set_level(logging.DEBUG)
    with Scrubber(token).guard():
        print(f"Downloaded with {token}")
        logging.getLogger("urllib3.connectionpool").debug("sent %s", f"token {token}")
        try:
            raise ValueError(f"bad {token}")
        except ValueError:
            logging.getLogger("qai_hub").exception("failed")
    logging.getLogger("after").info("kept %s", token)  # outside the guard: untouched
    assert capsys.readouterr().out == ""
    assert [r.getMessage() for r in caplog.records] == ["sent token ***", "failed", f"kept {token}"]
    assert "ValueError: bad ***" in caplog.text and caplog.text.count(token) == 1
