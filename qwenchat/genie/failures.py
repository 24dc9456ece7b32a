"""Known ways genie-t2t-run fails on a phone, recognised from its output, with advice.

Genie's messages are terse ("Failed to create the dialog."); the cause is usually one
of a few set-up mistakes. ``diagnose`` looks for the telltale text in stderr/stdout.
Order matters: the more specific patterns come first (a QNN load error is followed by
the generic "Failed to create the dialog.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qwenchat.errors import ContextOverflowError, GenieError, PhoneFullError


@dataclass(frozen=True)
class GenieFailure:
    kind: str
    message: str  # the line of Genie's output that gave it away
    hint: str


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    hint: str


def _rule(kind: str, pattern: str, hint: str) -> _Rule:
    return _Rule(kind, re.compile(pattern, re.IGNORECASE), hint)


_RULES = (
    _rule(
        # strerror(ENOSPC): a file Genie or qwenchat wrote on the phone (a dialog state, a
        # profile, a prompt) did not fit. Not a lost phone, not a model problem.
        "phone-full",
        r"No space left on device",
        PhoneFullError.default_hint,
    ),
    _rule(
        "context-overflow",
        r"Context limit exceeded|Context Size was (?:exceeded|exhausted)",
        "Shorten the prompt, lower --max-tokens, or drop older turns (/clear).",
    ),
    _rule(
        "unknown-option",
        r"Unknown option:?\s*\S+|Invalid parameter for argument",
        "This genie-t2t-run does not know an option qwenchat passed: its QAIRT SDK is older "
        "or newer than the ones qwenchat was checked against. Send us `qwenchat doctor "
        "--report FILE` (it records the SDK version) and push a current QAIRT meanwhile.",
    ),
    _rule(
        "wrong-chip",
        r"\berr(?:or)?[ :=]*5005\b|QNN error 5005|Unsupported SoC",
        "QNN error 5005: the context binaries were built for another chip (Hexagon arch), or "
        "with another QAIRT than the one on the phone. Check `qwenchat doctor` (SoC and QAIRT "
        "versions) and use the export for this phone's SoC (getprop ro.soc.model).",
    ),
    _rule(
        "qairt-mismatch",
        r"\berr(?:or)?[ :=]*5000\b",
        "QNN error 5000: usually the QAIRT on the phone is older than the one the binaries "
        "were compiled with, or they were compiled for another device. Push the QAIRT version "
        "`qwenchat doctor` names for the bundle.",
    ),
    _rule(
        "context-load",
        r"Could not create context from binary|Create From Binary FAILED",
        "QNN could not load a context binary (the error number says why; 1007 has been seen "
        "when the NPU ran out of memory): close other apps or reboot, check `qwenchat doctor` "
        "(RAM, QAIRT version), and send us `qwenchat doctor --report FILE` if it persists.",
    ),
    _rule(
        "qnn-interface",
        r"Unable to find a valid interface|getQnnInterface FAILED",
        "libQnnHtp.so came from the wrong place: keep /vendor/lib64 out of (or after) "
        "LD_LIBRARY_PATH and point it at the QAIRT libs pushed with the bundle.",
    ),
    _rule(
        "missing-skel",
        r"Failed to load skel|libQnnHtpV\d+Skel\.so.*(?:not found|cannot open|No such file)"
        r"|(?:not found|cannot open)[^\n]*libQnnHtpV\d+Skel\.so"
        r"|remote_handle64_open failed for file:///libQnnHtpV\d+Skel|Failed to retrieve skel build id",
        "The DSP-side library (libQnnHtpV<arch>Skel.so) is missing or ADSP_LIBRARY_PATH "
        "does not point at it: run push-assets again (it copies the Skel for this SoC).",
    ),
    _rule(
        "missing-library",
        r"CANNOT LINK EXECUTABLE|library \"?lib\S+\.so\"? not found|dlopen failed"
        r"|Failed to load stub",
        "A QAIRT library (libGenie.so, libQnnHtp*.so, the Stub) is missing or "
        "LD_LIBRARY_PATH does not point at it: run push-assets again.",
    ),
    _rule(
        "npu-memory",
        r"Failed to map weights|out of memory|insufficient memory",
        "The NPU could not map the model: close other apps or reboot the phone, then retry.",
    ),
    _rule(
        "tokenizer",
        r"tokenizer[^\n]*(?:fail|error|cannot|could not|not found|invalid)"
        r"|(?:fail|error|cannot|could not)[^\n]*tokenizer",
        "tokenizer.json is missing or not the model's own tokenizer: run push-assets again.",
    ),
    _rule(
        "missing-file",
        r"No such file|Failed to open|doesn't exists or is in bad shape",
        "The bundle on the phone is incomplete (a ctx-bin or config is missing): run "
        "`qwenchat push-assets` again.",
    ),
    _rule(
        "config-field",
        r"Missing QnnHtp field:\s*\S+|map::at:\s*key not found",
        "This Genie version requires a genie_config.json field qwenchat's config lacks (older "
        "SDKs need e.g. pos-id-dim): push a current QAIRT, or send us `qwenchat doctor "
        "--report FILE` so the config can follow this SDK.",
    ),
    _rule(
        "bad-config",
        r"Failed to create the dialog config",
        "genie_config.json is malformed or has keys this Genie version rejects: "
        "re-push the configs (push-assets) or compare with the model's file in genie_configs/.",
    ),
    _rule(
        "dialog-state",
        r"Failed to restore|Failed to save",
        "The saved conversation state on the phone is missing or unusable: start a new "
        "conversation (/clear) so the whole history is sent again.",
    ),
    _rule(
        "no-prompt",
        r"Please provide prompt",
        "genie-t2t-run got no prompt file: this is a qwenchat bug, please report it.",
    ),
    _rule(
        "profile-exists",
        r"Invalid --profile argument|Cannot create profile output file",
        "The profile file already existed; qwenchat uses a fresh name per run (a bug if seen).",
    ),
    _rule(
        "dialog",
        r"Failed to create the dialog\b|Failed to query",
        "Genie could not load or run the model; rerun with --log verbose output to see why.",
    ),
)


def diagnose(text: str) -> GenieFailure | None:
    """The first known failure found in Genie's output, or None."""
    lines = text.splitlines()
    for rule in _RULES:
        for line in lines:
            if rule.pattern.search(line):
                return GenieFailure(rule.kind, line.strip(), rule.hint)
    return None


def raise_for_failure(text: str, exit_code: int | None) -> None:
    """Raise the right error when a run failed.

    ``exit_code`` 0 never raises; ``None`` (the transport did not report one) raises only
    for a recognised failure; any other code always raises, with advice when recognised.

    A context overflow raises ``ContextOverflowError`` even though Genie printed [END]:
    the reply was cut, and genie-t2t-run exits 1 without a profile.
    """
    if exit_code == 0:
        # Success: the text may still quote an error (a reply about "No such file").
        return
    failure = diagnose(text)
    if failure is None:
        if exit_code not in (0, None):
            last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
            detail = f": {last}" if last else ""
            raise GenieError(
                f"genie-t2t-run exited with status {exit_code}{detail}",
                hint="Run `qwenchat doctor` to check the bundle and libraries on the phone.",
            )
        return
    if failure.kind == "context-overflow":
        raise ContextOverflowError(f"context full: {failure.message}", hint=failure.hint)
    raise GenieError(f"genie-t2t-run failed ({failure.kind}): {failure.message}", hint=failure.hint)


def phone_full(message: str, hint: str | None = None) -> GenieFailure:
    """A write to the phone that failed with ENOSPC (``PhoneFullError``'s message), as a
    query's failure: its own kind and hint (``hint``: with what fills the phone), never a
    lost phone."""
    where = message.split(": the phone is full", 1)[0].strip()
    return GenieFailure(
        "phone-full",
        f"the phone's storage is full (No space left on device, {where})",
        hint or PhoneFullError.default_hint,
    )
