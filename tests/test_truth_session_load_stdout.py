"""The session engine diagnoses a failed model load from genie-app's stdout too.

Genie's own log lines (QnnDsp's ``[ERROR] "Could not create context from binary ... err
5005"``) can come on stdout (the tutorial's sample shows Genie's log lines there), before
genie-app's red ``Failed to create the dialog.`` on stderr. A real phone's capture
(tests/data/real/aihubmodels289_err5005_sm8750_qairt244, ai-hub-models issue #289) is
replayed on the emulated phone by a stand-in genie-app, a mksh script that speaks genie-app's
script protocol (comment lines echoed, ``version`` unknown as in older builds) and prints the
capture on stdout at ``dialog create``.

Failure modes:
- the stdout before the load's marker is thrown away, so the user gets the generic
  "Failed to create the dialog." instead of the 5005 explanation;
- genie-app ending during the load loses what it printed on stdout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenchat.chat.session import StopReason, open_chat_session
from qwenchat.layout import PhoneLayout

CAPTURE = Path(__file__).parent / "data" / "real" / "aihubmodels289_err5005_sm8750_qairt244.console.txt"
RED, RESET = "\033[91m", "\033[0m"


def _stand_in(capture: str, *, exit_after_load: bool) -> str:
    end = "exit 1" if exit_after_load else ""
    return f"""#!/system/bin/sh
# A stand-in for genie-app (tests only): replays a real phone's output on stdout.
exec 5<"$2"
while read -r line <&5; do  # default IFS: the padding (leading blanks) goes
  case $line in
    "#"*) print -r -- "$line" ;;
    version) print -u2 -r -- "{RED}[1]: Unknown command: version.{RESET}" ;;
    "dialog create "*)
      cat {capture}
      print -u2 -r -- "{RED}Failed to create the dialog.{RESET}"
      {end} ;;
  esac
done
"""


@pytest.mark.parametrize("exit_after_load", [False, True], ids=["goes-on", "ends"])
def test_a_5005_on_stdout_is_diagnosed(bundled_phone, exit_after_load):
    _, dev = bundled_phone()
    layout = PhoneLayout()
    capture = f"{layout.tmp_dir}/capture.txt"
    dev.shell(f"mkdir -p {layout.tmp_dir}")
    dev.push_bytes(CAPTURE.read_bytes(), capture)
    app = f"{layout.bin_dir}/genie-app"
    dev.push_bytes(_stand_in(capture, exit_after_load=exit_after_load).encode(), app)
    assert dev.shell(f"chmod 755 {app}").ok
    session = open_chat_session(dev, engine="session", warm=False)
    try:
        result = session.send("Hello")
    finally:
        session.end()
    assert result.stop is StopReason.FAILED
    assert result.error == '[ERROR] "Could not create context from binary for context index = 0 : err 5005"'
    assert result.error_hint.startswith("QNN error 5005: the context binaries were built for another chip")
