"""Which genie-t2t-run endings raise, and with what words: exit status against recognised
output, the rule order (a specific cause before Genie's generic last line), the last line
quoted for an unknown failure. Hand-written expected messages."""

from __future__ import annotations

import pytest

from qwenchat.errors import ContextOverflowError, GenieError
from qwenchat.genie.failures import diagnose, raise_for_failure


def test_exit_zero_never_raises_even_when_the_reply_quotes_an_error():
    raise_for_failure("No such file or directory\nFailed to create the dialog.", 0)


def test_no_exit_code_raises_only_for_a_recognised_failure():
    raise_for_failure("some ordinary output\n", None)
    with pytest.raises(GenieError, match=r"failed \(missing-file\): No such file: x.bin"):
        raise_for_failure("  No such file: x.bin  \n", None)


def test_an_unknown_failure_quotes_the_last_non_blank_line():
    with pytest.raises(GenieError) as info:
        raise_for_failure("first\n  the last words  \n\n   \n", 3)
    assert str(info.value).startswith("genie-t2t-run exited with status 3: the last words")
    assert "qwenchat doctor" in info.value.hint


def test_an_unknown_failure_with_no_output_says_only_the_status():
    with pytest.raises(GenieError) as info:
        raise_for_failure("", 139)
    assert str(info.value).startswith("genie-t2t-run exited with status 139")
    assert ":" not in str(info.value).split("139", 1)[1].split("\n")[0]


def test_a_full_context_is_its_own_error_whatever_the_status():
    for code in (1, None):
        with pytest.raises(ContextOverflowError, match="context full: Context limit exceeded"):
            raise_for_failure("reply so far\nContext limit exceeded\n[END]", code)


def test_the_specific_cause_wins_over_the_generic_line_printed_first():
    text = "Failed to create the dialog.\nCould not create context from binary: err 1007"
    failure = diagnose(text)
    assert failure.kind == "context-load"
    assert failure.message == "Could not create context from binary: err 1007"
    with pytest.raises(GenieError, match=r"\(context-load\)"):
        raise_for_failure(text, 1)


def test_the_first_matching_line_is_the_one_quoted():
    failure = diagnose("Failed to open a.bin\nFailed to open b.bin")
    assert (failure.kind, failure.message) == ("missing-file", "Failed to open a.bin")


def test_nothing_recognised_is_none():
    assert diagnose("") is None
    assert diagnose("hello\nworld") is None


def test_exit_status_one_with_unknown_output_raises():
    with pytest.raises(GenieError, match="genie-t2t-run exited with status 1: boom"):
        raise_for_failure("boom\n", 1)
