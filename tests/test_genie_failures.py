"""Known genie-t2t-run failures, recognised from the texts Genie and QNN really print."""

from __future__ import annotations

import pytest

from qwenchat.errors import ContextOverflowError, GenieError
from qwenchat.genie.failures import diagnose, raise_for_failure

CASES = [
    (
        '[ERROR] "Could not create context from binary for context index = 0 : err 5005"\n'
        "Failed to create the dialog.\n",
        "wrong-chip",
        "another chip",
    ),
    ("QNN error 5005 while loading\n", "wrong-chip", "SoC"),
    (
        "Unable to find a valid interface.\nQnn getQnnInterface FAILED!\n",
        "qnn-interface",
        "/vendor/lib64",
    ),
    ("Failed to load skel, error: 4000\n", "missing-skel", "ADSP_LIBRARY_PATH"),
    (
        "dlopen: libQnnHtpV79Skel.so: cannot open shared object file\n",
        "missing-skel",
        "ADSP_LIBRARY_PATH",
    ),
    ("Failed to create the dialog config.\n", "bad-config", "genie_config.json"),
    (
        "Failed to load tokenizer from tokenizer.json\nFailed to create the dialog.\n",
        "tokenizer",
        "tokenizer.json",
    ),
    ("Context limit exceeded (4000 + 200 > 4096)\n", "context-overflow", "Shorten"),
    ("[END]\nContext Size was exceeded.\n", "context-overflow", "Shorten"),
    ("Context Size was exhausted\n", "context-overflow", "Shorten"),
    (
        "Failed to open weight_sharing_model_3_of_4.serialized.bin: No such file or directory\n",
        "missing-file",
        "push-assets",
    ),
    ("ERROR:: Please provide prompt using --prompt or --prompt_file.\n", "no-prompt", "bug"),
    ("Failed to create the dialog.\n", "dialog", "verbose"),
    (
        'CANNOT LINK EXECUTABLE "genie-t2t-run": library "libGenie.so" not found: needed by main executable\n',
        "missing-library",
        "LD_LIBRARY_PATH",
    ),
    ('dlopen failed: library "libQnnHtpV79Stub.so" not found\n', "missing-library", "push-assets"),
    (
        "[ERROR] Failed to restore dialog state from s.bin: bad magic\nFailed to restore.\n",
        "dialog-state",
        "/clear",
    ),
    ("Failed to map weights into the NPU's address space\n", "npu-memory", "reboot"),
    ("Unsupported SoC model SM8450\nFailed to create the dialog.\n", "wrong-chip", "SoC"),
]


@pytest.mark.parametrize(("text", "kind", "hint_word"), CASES)
def test_diagnose(text, kind, hint_word):
    failure = diagnose(text)
    assert failure is not None
    assert failure.kind == kind
    assert hint_word in failure.hint
    assert failure.message in text


def test_nothing_known():
    assert diagnose("Using libGenie.so version 1.14.0\n\n[BEGIN]: hi[END]\n") is None


def test_raise_for_failure_overflow():
    with pytest.raises(ContextOverflowError) as exc:
        raise_for_failure("[END]\nContext Size was exceeded.\n", 1)
    assert exc.value.hint and "Shorten" in exc.value.hint


def test_raise_for_failure_known_and_unknown():
    with pytest.raises(GenieError, match="wrong-chip") as exc:
        raise_for_failure("Could not create context from binary ... err 5005", 1)
    assert not isinstance(exc.value, ContextOverflowError)
    with pytest.raises(GenieError, match="status 139: Segmentation fault"):
        raise_for_failure("some output\nSegmentation fault\n", 139)
    # A recognised failure is raised even when the transport reported no exit status.
    with pytest.raises(GenieError, match="missing-skel"):
        raise_for_failure("Failed to load skel", None)


def test_success_never_raises_even_if_the_reply_quotes_an_error():
    raise_for_failure("[BEGIN]: The error 'No such file' means ...[END]\n", 0)
    raise_for_failure("all fine", None)
