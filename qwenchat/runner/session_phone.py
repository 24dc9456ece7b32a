"""The phone side of a live Genie session: start genie-app on a FIFO, feed it lines, find and
end sessions (ours at close, orphans of a killed qwenchat, all of them for `qwenchat clean`).

How genie-app is kept reading for a whole chat
----------------------------------------------
genie-app reads its script (``-s FIFO``) line by line and stops at end of file, which a FIFO
reader sees once no writer holds it open. The launching shell opens the FIFO read-write on
the exec'd command itself (``exec genie-app -s FIFO 3<>FIFO``): genie-app then holds a writer
of its own (fd 3), so it never sees EOF between turns, and no separate holder process exists
to be orphaned; when genie-app ends, nothing is left holding the FIFO. (A redirection on the
exec'd command is inherited; mksh makes fds opened by a bare ``exec 3<>F`` close-on-exec.)

How a line reaches it
---------------------
Through a ``cat`` kept running on the phone for the whole session, whose stdin is an open ADB
stream (shell protocol v2 stdin frames) and whose stdout is the FIFO: a batch of lines is one
packet and its ack, with no new shell on the phone (``FifoWriter``; a shell command per batch,
``print -rn -- LINE... 1<>FIFO`` with mksh builtins, cost 8-44 ms per turn on the emulated
phone, on the way to every first token). This needs shell protocol v2 (Android 7+), as the
session's own stream does (v1 output has no end we can see without holding bytes back).
A line holds only fixed words, paths qwenchat made (``session_files.script_word``) and our own
``# qwenchat-...`` marks, checked before any write; user text never appears, it travels as a
prompt file pushed before. ``1<>`` opens without blocking even when genie-app is gone (a plain
``>`` would hang the writer without a reader). Only this engine writes into its FIFO, one batch
at a time. The ``cat`` ends with the ADB stream: at close, or when qwenchat or the link dies
(adbd hangs up the command), so it cannot outlive its session's owner.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from typing import TYPE_CHECKING

from qwenchat.errors import DeviceCommandError, QwenchatError
from qwenchat.runner.session_files import (
    PREFIX,
    Owner,
    PidFileEntry,
    SessionFiles,
    parse_pid_listing,
    script_word,
)
from qwenchat.shellwords import quote

if TYPE_CHECKING:
    from qwenchat.device.base import Device
    from qwenchat.layout import PhoneLayout

GENIE_APP = "genie-app"
SESSION_PID_MARKER = "qwenchat-session-pid:"
POLL_S = 0.05
_MARK = re.compile(r"# qwenchat-[a-z]+ [0-9a-f]+-[0-9]+\Z")


def genie_app_path(layout: PhoneLayout) -> str:
    """Where push-assets puts genie-app: beside genie-t2t-run."""
    return posixpath.join(layout.bin_dir, GENIE_APP)


def launch_command(layout: PhoneLayout, files: SessionFiles, owner: str, adsp: str) -> str:
    """The one shell line that makes the FIFO, writes the pid file, prints the pid and execs
    genie-app on the FIFO (the pid printed is genie-app's: exec keeps it)."""
    tmp, fifo, pid = quote(layout.tmp_dir), quote(files.fifo), quote(files.pid_file)
    part = quote(files.pid_file + ".part")
    env = f"LD_LIBRARY_PATH={quote(layout.lib_dir)} ADSP_LIBRARY_PATH={quote(adsp)}"
    return (
        f"mkdir -p {tmp} && cd {quote(layout.bundle_dir)} && rm -f {fifo} && mkfifo {fifo}"
        # Held open from here on (fd 4 until the exec, fd 3 after it): a line written after
        # the pid shows is kept in the FIFO even before genie-app opens it (a FIFO that
        # nobody holds drops what was written when its last writer closes).
        f" && exec 4<>{fifo}"
        # The pid file appears whole or not at all (a sweep never reads half of one).
        f' && echo "$$" {quote(owner)} > {part} && mv {part} {pid}'
        f' && echo "{SESSION_PID_MARKER} $$"'
        f" && {env} exec {quote(genie_app_path(layout))} -s {fifo} 3<>{fifo}"
    )


def script_line(*words: str) -> str:
    return " ".join(script_word(w) for w in words)


PAD = 4096  # spaces after every line: genie-app's reader hands a line on only 4 KB later
_PAD_BYTES = b" " * PAD


def _checked(lines: list[str]) -> list[str]:
    """The lines, once each is known to hold only our own words, paths and marks."""
    for line in lines:
        if line.startswith("#"):
            if not _MARK.match(line):
                raise ValueError("only qwenchat's own marks may be written as comments")
            continue
        for word in line.split(" "):
            script_word(word)  # never anything but our own words and paths
    return lines


class FifoWriter:
    """Script lines into the FIFO through one ``cat`` fed on an open ADB stream (see the module
    docstring), each followed by PAD spaces.

    genie-app reads its script through libc++'s filebuf, whose refill is one bionic fread of
    ~4 KB that returns only when that much arrived: a short line alone would sit in the FIFO
    until the next turn. PAD spaces after each newline complete the pending refill whatever
    the reader's position. They carry no newline: they are the leading blanks of the NEXT
    line, which genie-app's word split drops, so they print nothing (a blank padding line
    would print an empty line late, into a reply that is streaming).
    """

    def __init__(self, device: Device, fifo: str) -> None:
        self.fifo = fifo
        # `[ -p ]` first: `1<>` would create a plain file where the FIFO is gone. exec: the
        # stream's command is the cat itself.
        self._fed = device.open_stdin(f"[ -p {quote(fifo)} ] && exec cat 1<>{quote(fifo)}")

    def write(self, lines: list[str], *, timeout: float = 10.0) -> None:
        data = b"".join((line + "\n").encode() + _PAD_BYTES for line in _checked(lines))
        try:
            self._fed.write(data, timeout=timeout)
        except DeviceCommandError as exc:  # the cat ended; a lost phone stays a lost phone
            raise DeviceCommandError(
                f"could not write to the session's FIFO: {exc.message}"
            ) from exc

    def close(self) -> None:
        self._fed.close()


# ----- finding sessions
def list_sessions(device: Device, tmp_dir: str) -> list[PidFileEntry]:
    """Every session pid file under ``tmp_dir`` (any owner)."""
    glob = f"{quote(tmp_dir)}/{PREFIX}*.pid"
    result = device.shell(
        f'for f in {glob}; do [ -f "$f" ] && echo "$f $(cat "$f")"; done; true', timeout=30
    )
    return parse_pid_listing(result.text)


def _alive_test(pid: int, fifo: str) -> str:
    # A zombie or a recycled pid has no (or another) command line: only ours matches.
    return f"tr '\\0' '\\n' < /proc/{int(pid)}/cmdline 2>/dev/null | grep -qxF {quote(fifo)}"


def runs_session(device: Device, pid: int, fifo: str) -> bool:
    """Whether ``pid`` is still the genie-app reading ``fifo`` (not a recycled pid)."""
    with device.side_channel() as dev:
        result = dev.shell(f"{_alive_test(pid, fifo)} && echo yes; true", timeout=10)
    return result.text.strip() == "yes"


def stop_session_process(device: Device, pid: int, fifo: str, *, grace_s: float = 3.0) -> None:
    """TERM, then KILL if it lingers; raises if it survives both. Only ``pid`` if it still
    reads ``fifo``: a pid the phone gave to another process since is left alone. One shell
    command on the side channel does it all (a stop must be quick: Ctrl-C waits on it)."""
    alive, p = _alive_test(pid, fifo), int(pid)
    polls = max(1, int(grace_s / POLL_S))
    wait = f"n=0; while {alive} && [ $n -lt {polls} ]; do sleep {POLL_S}; n=$((n+1)); done"
    command = (
        f"if {alive}; then kill -TERM {p}; {wait}; "
        f"if {alive}; then kill -KILL {p}; {wait}; fi; fi; {alive} && echo alive; true"
    )
    with device.side_channel() as dev:
        result = dev.shell(command, timeout=2 * grace_s + 10)
    if result.text.strip() == "alive":
        raise DeviceCommandError(
            f"genie-app (pid {pid}) survived kill -9 on the phone",
            hint=f"Reboot the phone or kill it by hand: adb shell kill -9 {p}",
        )


def end_session(device: Device, entry: PidFileEntry) -> None:
    """Stop the session's genie-app and remove every file of it."""
    files = SessionFiles(posixpath.dirname(entry.path), entry.session_id)
    stop_session_process(device, entry.pid, files.fifo)
    remove_files(device, files)


def remove_files(device: Device, files: SessionFiles) -> None:
    pattern = f"{quote(files.tmp_dir)}/{PREFIX}{files.id}*"
    device.shell(f"rm -f {pattern}", timeout=30)


def sweep_orphans(
    device: Device, tmp_dir: str, *, own_tag: str | None = None, keep: frozenset[str] = frozenset()
) -> list[PidFileEntry]:
    """End the sessions whose owner was a qwenchat on this host that is gone (killed, or
    crashed before its close()), and those of ``own_tag`` (this process) not in ``keep`` (a
    session this process lost track of: its phone vanished and came back); returns them.
    Sessions of live owners, or of other hosts (whose liveness cannot be known here), are
    left: `qwenchat clean` ends those."""
    ended = []
    for entry in list_sessions(device, tmp_dir):
        owner = Owner.parse(entry.owner)
        ours = own_tag is not None and entry.owner == own_tag
        if ours and entry.session_id in keep:
            continue
        if not ours and (owner is None or not owner.gone()):
            continue
        with contextlib.suppress(QwenchatError):
            end_session(device, entry)
            ended.append(entry)
    return ended


def stop_all_sessions(device: Device, tmp_dir: str) -> list[PidFileEntry]:
    """End every session under ``tmp_dir``, whoever started it (`qwenchat clean`)."""
    ended = []
    for entry in list_sessions(device, tmp_dir):
        end_session(device, entry)
        ended.append(entry)
    return ended
