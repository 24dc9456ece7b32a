"""Which pieces of a multi-line token the scrubber masks: a piece of 8 characters or more is
secret on its own, a shorter one is not (it would mask ordinary words). Hand-written
expected strings."""

from __future__ import annotations

from qwenchat.hub.scrub import MASK, Scrubber


def test_a_token_piece_of_eight_characters_is_masked_and_one_of_seven_is_not():
    scrub = Scrubber("abcdefgh\nijklmno")
    assert scrub("first abcdefgh then ijklmno") == f"first {MASK} then ijklmno"


def test_a_piece_of_nine_characters_is_masked_too():
    scrub = Scrubber("abcdefghi  xyz")
    assert scrub("abcdefghi and xyz") == "*** and xyz"


def test_a_blank_token_masks_nothing():
    assert Scrubber("   ", None)("keep   these words") == "keep   these words"
    assert Scrubber("secret-token-1")("") == ""


def test_the_whole_token_is_masked_before_its_pieces():
    # Longest form first: the whole token becomes one mask, not one per piece.
    scrub = Scrubber("abcdefgh ijklmnop")
    assert scrub("t=abcdefgh ijklmnop.") == "t=***."


def test_two_tokens_are_both_masked():
    scrub = Scrubber("first-secret-1", "second-secret-2")
    assert scrub("a first-secret-1 b second-secret-2 c") == "a *** b *** c"


def test_a_json_escaped_token_is_masked_whole():
    # Only JSON escapes the double quote: the JSON form is the one that must match, to its end.
    scrub = Scrubber('ab"cdefgh')
    assert scrub('{"t": "ab\\"cdefgh"}') == '{"t": "***"}'


def test_a_unicode_escaped_token_is_masked_whole():
    scrub = Scrubber("qh-é-secret")
    assert scrub("token=qh-\\xe9-secret;") == "token=***;"


def test_url_quoted_forms_of_a_token_are_masked_whole():
    scrub = Scrubber("ab cd/efgh")
    assert scrub("?t=ab%20cd%2Fefgh&x=1") == "?t=***&x=1"  # quote(safe="")
    assert scrub("?t=ab+cd%2Fefgh&x=1") == "?t=***&x=1"  # quote_plus


def test_a_log_record_whose_format_does_not_match_its_args_is_still_scrubbed(caplog):
    """A library's broken log call (too few args for its format) must not turn into an
    exception inside our record factory, and its raw text must still lose the token."""
    import logging

    token = "qh-FAKE-0123456789ab-SECRET"
    caplog.set_level(logging.DEBUG)
    with Scrubber(token).guard():
        logging.getLogger("qai_hub").warning(f"auth {token} for %s and %s", "only-one")
    assert [r.getMessage() for r in caplog.records] == [f"auth {MASK} for %s and %s"]
    assert token not in caplog.text


def test_missing_hub_libraries_are_one_hub_error_naming_the_module():
    import pytest

    from qwenchat.errors import HubError
    from qwenchat.hub.transport import _require

    with pytest.raises(HubError, match=r"\(qwenchat_no_such_module is missing\)"):
        _require("qwenchat_no_such_module")
