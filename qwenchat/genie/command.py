"""The genie-t2t-run command line, as argv and as one line for the phone's shell.

Only file paths go on the command line: the prompt travels as a file (``--prompt_file``
or ``--tokens_file``), so user text never meets a shell. Every path is quoted.

The host learns the process id from the shell, not from Genie: the line prints ``$$`` and then
``exec``s genie-t2t-run, which keeps that pid. ``--pid`` is in the genie-t2t-run source we
read, but when it was added is unknown, Qualcomm's own harness never passes it, and an SDK
without it fails every run ("Unknown option"); every SDK's shell has ``$$``.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenchat.shellwords import quote

# The first stdout line of every run: "<marker> <pid>" (genie/stream.py turns it into PidLine).
SHELL_PID_MARKER = "qwenchat-genie-pid:"

# Where Android keeps the system's own DSP libraries; Genie's Skel dir comes first, then
# these, as the tutorial's ADSP_LIBRARY_PATH does (the list is ";"-separated).
ANDROID_ADSP_DIRS = ("/system/lib/rfsa/adsp", "/system/vendor/lib/rfsa/adsp", "/dsp")


@dataclass(frozen=True)
class GenieInvocation:
    binary: str  # genie-t2t-run on the phone
    bundle_dir: str  # the run's working directory (genie_config.json and the ctx-bins)
    lib_dir: str  # LD_LIBRARY_PATH: libGenie.so, libQnnHtp*.so
    skel_dir: str  # ADSP_LIBRARY_PATH: libQnnHtpV<arch>Skel.so
    config: str = "genie_config.json"
    prompt_file: str | None = None
    tokens_file: str | None = None
    profile: str | None = None  # must not exist yet: genie-t2t-run refuses to overwrite
    save: str | None = None
    restore: str | None = None
    pid: bool = False  # Genie's own --pid line: not on every SDK (the shell prints it instead)
    log: str | None = None  # error | warn | info | verbose

    def __post_init__(self) -> None:
        # genie-t2t-run refuses both; neither is left to it ("Please provide prompt").
        if self.prompt_file is not None and self.tokens_file is not None:
            raise ValueError("give one of prompt_file or tokens_file, not both")
        if self.log is not None and self.log not in ("error", "warn", "info", "verbose"):
            raise ValueError(f"log level must be error, warn, info or verbose, not {self.log!r}")

    @property
    def adsp_library_path(self) -> str:
        return ";".join((self.skel_dir, *ANDROID_ADSP_DIRS))

    def argv(self) -> list[str]:
        """genie-t2t-run's arguments, unquoted (for a process API, or the emulator)."""
        args = [self.binary, "-c", self.config]
        if self.prompt_file is not None:
            args += ["--prompt_file", self.prompt_file]
        if self.tokens_file is not None:
            args += ["--tokens_file", self.tokens_file]
        if self.profile is not None:
            args += ["--profile", self.profile]
        if self.save is not None:
            args += ["--save", self.save]
        if self.restore is not None:
            args += ["--restore", self.restore]
        if self.log is not None:
            args += ["--log", self.log]
        if self.pid:
            args.append("--pid")
        return args

    def shell_command(self) -> str:
        """One line for ``adb shell``: cd to the bundle, print the shell's pid, set the
        library paths, exec.

        ``exec`` makes genie-t2t-run replace the shell, so the pid printed is the process
        that a ``kill`` must reach.
        """
        env = (
            f"LD_LIBRARY_PATH={quote(self.lib_dir)} "
            f"ADSP_LIBRARY_PATH={quote(self.adsp_library_path)}"
        )
        words = " ".join(quote(arg) for arg in self.argv())
        return f'cd {quote(self.bundle_dir)} && echo "{SHELL_PID_MARKER} $$" && {env} exec {words}'
