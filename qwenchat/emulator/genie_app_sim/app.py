"""The simulated genie-app's main(): its command line, its script loop and its commands.

Follows the newest public genie-app source (see qwenchat/genie/genie_app.md): every command
is echoed as ``> words`` before it runs; a failing command prints its error in red on stderr
and the script goes on (the exit status stays 0); ``exit`` or the end of the script ends it.
Two builds: "new" (that source: ``dialog abort``, ``setMaxNumTokens``, ``async``, ``sleep``,
``version``, ``help``) and "old" (the commands QAIRT's older genie-app page lists), chosen by
the device profile key ``genie_app_build``.

No signal handlers, like the real binary: SIGINT/SIGTERM/SIGHUP kill it on the spot.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from qwenchat.emulator.genie_app_sim.dialogs import (
    LOG_LEVELS,
    ConsoleSink,
    FileSink,
    QueryFailed,
    SimConfig,
    SimDialog,
    SimLog,
    SimProfile,
)
from qwenchat.emulator.genie_app_sim.script import LineReader, SplitError, combine, split
from qwenchat.emulator.genie_sim import runtime
from qwenchat.emulator.genie_sim.dialog_config import parse_dialog_config
from qwenchat.emulator.genie_sim.emulator_link import EmulatorLink, NotOnEmulator
from qwenchat.emulator.genie_sim.runtime import Env, LaunchFailure

BANNER = "[SIMULATED] genie-app: qwenchat emulator (no model runs here)"
RED, RESET = "\033[91m", "\033[0m"
BUILDS = ("new", "old")
DEFAULT_BUILD = "new"

# genie-app's own errors carry the main.cpp line that threw them ("[1234]: ..."). The real
# numbers change from build to build; these stand in for them (SIMULATED).
_LINE = {
    "option": 2969,
    "script": 2654,
    "unknown": 2856,
    "format": 1512,
    "exists": 1598,
    "missing": 1633,
    "open": 1606,
    "output": 1672,
    "async": 2547,
    "loglevel": 2203,
    "simulated": 2999,
    "tokens": 1742,  # dialog tokenQuery's RT_ERRs
}


class AppError(Exception):
    """A std::exception genie-app throws itself: ``what()`` is ``[line]: message``."""

    def __init__(self, site: str, message: str) -> None:
        super().__init__(f"[{_LINE[site]}]: {message}")


def _ill(words: list[str]) -> AppError:
    return AppError("format", f"Ill-formatted command: {combine(words)}.")


class Out:
    """stdout flushed at every write (genie-app's std::flush/std::endl); stderr unbuffered.
    One lock: an async query's pieces and the main thread's echoes interleave by writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def write(self, data: bytes | str) -> None:
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        with self.lock:
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()

    def err(self, line: str) -> None:
        with self.lock:
            sys.stderr.buffer.write((line + "\n").encode("utf-8", "surrogateescape"))
            sys.stderr.buffer.flush()

    def red(self, what: str) -> None:
        self.err(f"{RED}{what}{RESET}")


NEW_HELP = [
    "async Process command in async mode",
    "dialog config create       CONFIG_NAME FILE.json",
    "dialog config bind profile CONFIG_NAME PROFILE_NAME",
    "dialog config bind log     CONFIG_NAME LOG_NAME",
    "dialog config free         CONFIG_NAME",
    "dialog create              DIALOG_NAME CONFIG_NAME",
    'dialog query               DIALOG_NAME ["PROMPT_STR"/PROMPT_FILE] [OUTPUT_FILE]',
    "dialog reset               DIALOG_NAME",
    "dialog save                DIALOG_NAME PATH",
    "dialog restore             DIALOG_NAME PATH",
    "dialog free                DIALOG_NAME",
    "dialog abort               DIALOG_NAME",
    "dialog setMaxNumTokens     DIALOG_NAME MAX_NUM_TOKENS",
    "exit",
    "help",
    "log create LOG_NAME LEVEL [OUTPUT_FILE.txt]",
    "log free   LOG_NAME",
    "profile config create CONFIG_NAME FILE.json",
    "profile config free   CONFIG_NAME",
    "profile create        PROFILE_NAME [CONFIG_NAME]",
    "profile save          PROFILE_NAME [OUTPUT_FILE.json]",
    "profile free          PROFILE_NAME",
    "sleep [DURATION in ms]",
    "version",
]

OLD_COMMANDS = """\
    dialog config create          CONFIG_NAME FILE.json
    dialog config bind profile    CONFIG_NAME PROFILE_NAME
    dialog config bind log        CONFIG_NAME LOG_NAME
    dialog config free            CONFIG_NAME
    dialog create                 DIALOG_NAME CONFIG_NAME
    dialog query                  DIALOG_NAME ["PROMPT_STR"/PROMPT_FILE] [OUTPUT_FILE]
    dialog reset                  DIALOG_NAME
    dialog save                   DIALOG_NAME PATH
    dialog restore                DIALOG_NAME PATH
    dialog free                   DIALOG_NAME
    profile create                PROFILE_NAME
    profile save                  PROFILE_NAME PATH
    profile free                  PROFILE_NAME
    log create                    LOG_NAME LEVEL [OUTPUT_FILE]
    log free                      LOG_NAME
    exit
"""


def usage(build: str) -> str:
    note = (
        f"(SIMULATED genie-app of the qwenchat emulator, build {build}: no model runs; "
        "commands not listed here are not simulated.)\n"
    )
    if build == "old":  # the layout of QAIRT's older genie-app page
        return (
            "DESCRIPTION:\n------------\nTool for text to text inference of LLMs using Genie.\n\n"
            "REQUIRED ARGUMENTS:\n-------------------\n"
            "-s or --script                        <FILE>      Script file that contains "
            "chronological sequence of script commands\n\n"
            "OPTIONAL ARGUMENTS:\n-------------------\n"
            "-h or --help                                      Show this help message and exit. "
            "Help message contains all currently supported script commands\n\n"
            "SCRIPT COMMANDS:\n----------------\n" + OLD_COMMANDS + "\n" + note
        )
    return (
        "Usage:\n-----\n\ngenie-app [options]\n\n"
        "Options:\n--------\n\n"
        f"{'  -h, --help':<30}Show this help message and exit.\n\n"
        f"{'  -s FILE or --script FILE':<30}Script file.\n\n"
        "Script commands:\n----------------\n\n" + "\n".join(NEW_HELP) + "\n\n" + note
    )


class App:
    def __init__(self, *, build: str, version: str, env: Env, link: EmulatorLink, out: Out):
        self.build = build
        self.version = version
        self.env = env
        self.link = link
        self.out = out
        self.configs: dict[str, SimConfig] = {}
        self.dialogs: dict[str, SimDialog] = {}
        self.created = 0  # dialogs made so far: their profile component is dialog<k>
        self.profiles: dict[str, SimProfile] = {}
        self.profile_configs: dict[str, str] = {}
        self.logs: dict[str, SimLog] = {}
        # Samplers by name: a dialog's own (`dialog getSampler`), sampler configs (JSON text).
        self.samplers: dict[str, SimDialog] = {}
        self.sampler_configs: dict[str, dict] = {}
        self.async_mode = False
        self.async_cmds: list[list[str]] = []
        self.threads: list[threading.Thread] = []

    @property
    def new(self) -> bool:
        return self.build == "new"

    # ---- the script loop -------------------------------------------------------------

    def run_script(self, path: str) -> int:
        """ScriptCommand: read a line, run it, read the next (genie_app.md section 2)."""
        self.out.write(f"> {combine(['script', path])}\n")
        try:
            fd = os.open(self.env.host(path), os.O_RDONLY)  # a FIFO waits for its writer here
        except OSError:
            self.out.red(str(AppError("script", f"Could not open script file: {path}.")))
            return 1
        reader = LineReader(fd)
        while True:
            raw = reader.readline()
            if raw is None:
                break
            try:
                words_b = split(raw)
            except SplitError as exc:  # outside the per-command try: ends the whole script
                self.out.red(f"[{_LINE['script']}]: {exc}")
                return 1
            if not words_b:
                self.out.write(b"\n")
                continue
            if words_b[0].startswith(b"#"):
                self.out.write(raw + b"\n")
                continue
            words = [w.decode("utf-8", "surrogateescape") for w in words_b]
            if words[0] != "async" and self.async_mode:
                self.async_cmds.append(words)
                continue
            try:
                self.process(words)  # `exit` raises SystemExit: out through main
            except (AppError, QueryFailed) as exc:
                self.out.red(exc.what if isinstance(exc, QueryFailed) else str(exc))
        os.close(fd)
        return 0

    def cleanup(self) -> None:
        for thread in self.threads:
            thread.join()
        self.threads.clear()

    # ---- one command -----------------------------------------------------------------

    def process(self, words: list[str]) -> None:
        self.out.write(f"> {combine(words)}\n")
        handler = {
            "dialog": self.dialog,
            "profile": self.profile,
            "log": self.log,
            "exit": self.exit,
        }
        if self.new:
            handler.update(
                {
                    "version": self.version_cmd,
                    "sleep": self.sleep,
                    "async": self.async_cmd,
                    "help": self.help_cmd,
                    "sampler": self.sampler,
                }
            )
        unsimulated = {
            "pipeline",
            "node",
            "embedding",
            "tokenizer",
            "accuracy",
            "dlc",
            "ls",
            "history",
            "script",
            "loop",
            "endloop",
        }
        fn = handler.get(words[0])
        if fn is None:
            if self.new and words[0] in unsimulated:
                raise AppError("simulated", f"SIMULATED genie-app: '{words[0]}' is not simulated")
            raise AppError("unknown", f"Unknown command: {words[0]}.")
        fn(words)

    def exit(self, words: list[str]) -> None:
        if len(words) != 1:
            raise _ill(words)
        self.cleanup()
        raise SystemExit(0)

    def version_cmd(self, words: list[str]) -> None:
        if len(words) != 1:
            raise _ill(words)
        self.out.write(
            f"genie-app pid: {os.getpid()}\nlibGenie.so = {self.version}\n"
            f"SIMULATED genie-app build: {self.build} (qwenchat emulator)\n"
        )

    def help_cmd(self, words: list[str]) -> None:
        if len(words) != 1:
            raise _ill(words)
        self.out.write("\n".join(NEW_HELP) + "\n")

    def sleep(self, words: list[str]) -> None:
        if len(words) != 2:
            raise _ill(words)
        try:
            ms = int(words[1])
        except ValueError:
            raise QueryFailed("stoi") from None  # std::stoi's invalid_argument
        time.sleep(max(0, ms) / 1000.0)  # wall time: not the phone's compute, not scaled

    def async_cmd(self, words: list[str]) -> None:
        if len(words) > 2 or (len(words) == 2 and words[1] not in ("end", "wait")):
            raise _ill(words)
        if len(words) == 1:
            if self.async_mode:
                raise AppError(
                    "async", "Ill-formatted async command syntax. Nested asyncs are not supported."
                )
            self.async_mode = True
        elif words[1] == "end":
            if not self.async_mode:
                raise AppError("async", "Not in async mode.")
            cmds, self.async_cmds = self.async_cmds, []
            thread = threading.Thread(target=self._run_async, args=(cmds,), daemon=True)
            self.threads.append(thread)
            thread.start()
            self.async_mode = False
        else:
            if self.async_mode:
                raise AppError("async", f"Can't do wait job in async mode: {combine(words)}.")
            self.cleanup()

    def _run_async(self, cmds: list[list[str]]) -> None:
        for words in cmds:
            try:
                self.process(words)
            except SystemExit:
                os._exit(0)
            except (AppError, QueryFailed) as exc:
                what = exc.what if isinstance(exc, QueryFailed) else str(exc)
                self.out.err(f"Error in async command: {what}")

    # ---- dialog ----------------------------------------------------------------------

    def _dialog_valid(self, w: list[str]) -> None:
        n = len(w)
        if n < 2:
            raise _ill(w)
        sub = w[1]
        if sub == "config":
            counts = {"create": (5,), "free": (4,), "bind": (6,)}
            if n < 3 or w[2] not in counts or n not in counts[w[2]]:
                raise _ill(w)
            return
        four = ("create", "save", "restore")
        new_only = {
            "setMaxNumTokens": (4,),
            "abort": (3,),
            "pause": (3,),
            "resume": (3, 4),
            "setPerformance": (4,),
            "getValue": (4,),
            "setStopSequence": (4,),
            "setOemKey": (4,),
            "setPriority": (5,),
            "rewindQuery": (4, 5),
            "tokenQuery": (4, 5),
            "getTokenizer": (4,),
            "getSampler": (4,),
        }
        if sub in four:
            ok = n == 4
        elif sub in ("reset", "free"):
            ok = n == 3
        elif sub == "query":
            ok = n in (4, 5)
        elif self.new and sub in new_only:
            ok = n in new_only[sub]
        else:
            ok = False
        if not ok:
            raise _ill(w)

    def dialog(self, w: list[str]) -> None:
        self._dialog_valid(w)
        sub = w[1]
        if sub == "config":
            self._dialog_config(w)
        elif sub == "create":
            name, cname = w[2], w[3]
            if name in self.dialogs:
                raise AppError("exists", f"Dialog already exists: {name}")
            config = self.configs.get(cname)
            if config is None:
                raise AppError("missing", f"Dialog config does not exist: {cname}")
            try:
                dialog = SimDialog(
                    component=f"dialog{self.created}",
                    config=config,
                    link=self.link,
                    env=self.env,
                    err_line=self.out.err,
                )
            except LaunchFailure as failure:
                raise _library_failure(failure, self.out) from None
            self.created += 1
            self.dialogs[name] = dialog
        elif sub == "free":
            dialog = self._get_dialog(w[2])
            del self.dialogs[w[2]]
            dialog.free()
        else:
            dialog = self._get_dialog(w[2])
            if sub == "query":
                self._query(dialog, w)
            elif sub == "tokenQuery":
                self._token_query(dialog, w)
            elif sub == "reset":
                dialog.reset()
            elif sub in ("save", "restore"):
                try:
                    if sub == "save":
                        dialog.save(w[3])
                    else:
                        dialog.restore(w[3])
                except LaunchFailure as failure:
                    raise _library_failure(failure, self.out) from None
            elif sub == "abort":
                dialog.signal_abort()
            elif sub == "getSampler":
                self.samplers[w[3]] = dialog  # its sampler, by a name of its own
            elif sub == "setMaxNumTokens":
                try:
                    dialog.max_tokens = int(w[3])
                except ValueError:
                    raise QueryFailed("stoi") from None
            else:
                raise AppError("simulated", f"SIMULATED genie-app: 'dialog {sub}' is not simulated")

    def _get_dialog(self, name: str) -> SimDialog:
        dialog = self.dialogs.get(name)
        if dialog is None:
            raise AppError("missing", f"Dialog does not exist: {name}")
        return dialog

    # ---- sampler (new build) --------------------------------------------------------

    def sampler(self, w: list[str]) -> None:
        """[SRC] SamplerCommand: `sampler config create C FILE.json`, `sampler config setParam
        C KEY VALUE`, `sampler config free C`, `sampler applyConfig S C` (S: a dialog's sampler
        from `dialog getSampler`); `sampler create/free/sampleData` are not simulated."""
        counts = {"create": 5, "free": 4, "setParam": 6}
        n = len(w)
        if n >= 3 and w[1] == "config" and counts.get(w[2]) == n:
            action, name = w[2], w[3]
            if action == "create":
                if name in self.sampler_configs:
                    raise AppError("exists", f"Sampler config already exists: {name}")
                text = self.env.read_text(w[4])
                if text is None:
                    raise AppError("open", f"Could not open JSON config file: {w[4]}.")
                self.sampler_configs[name] = _sampler_config(text)
                return
            if name not in self.sampler_configs:
                raise AppError("missing", f"Sampler config does not exist: {name}")
            if action == "free":
                del self.sampler_configs[name]
            else:
                self.sampler_configs[name][w[4]] = w[5]
            return
        if n == 4 and w[1] == "applyConfig":
            dialog = self.samplers.get(w[2])
            if dialog is None:
                raise AppError("missing", f"Sampler does not exist: {w[2]}")
            config = self.sampler_configs.get(w[3])
            if config is None:
                raise AppError("missing", f"Sampler config does not exist: {w[3]}")
            try:
                dialog.apply_sampler(config)
            except (TypeError, ValueError):
                raise QueryFailed("Failed to apply the sampler config.") from None
            return
        if n >= 2 and w[1] in ("create", "free", "sampleData"):
            raise AppError("simulated", f"SIMULATED genie-app: 'sampler {w[1]}' is not simulated")
        raise _ill(w)

    def _dialog_config(self, w: list[str]) -> None:
        action = w[2]
        if action == "create":
            name, path = w[3], w[4]
            if name in self.configs:
                raise AppError("exists", f"Dialog config already exists: {name}")
            text = self.env.read_text(path)
            if text is None:
                raise AppError("open", f"Could not open JSON config file: {path}.")
            try:
                dcfg = parse_dialog_config(text)
            except LaunchFailure as failure:
                raise _library_failure(failure, self.out) from None
            self.configs[name] = SimConfig(text=text, dcfg=dcfg)
        elif action == "free":
            if w[3] not in self.configs:
                raise AppError("missing", f"Dialog config does not exist: {w[3]}")
            del self.configs[w[3]]
        else:  # bind
            kind, cname, target = w[3], w[4], w[5]
            config = self.configs.get(cname)
            if config is None:
                raise AppError("missing", f"Dialog config does not exist: {cname}")
            if kind == "profile":
                profile = self.profiles.get(target)
                if profile is None:
                    raise AppError("missing", f"Profile does not exist: {target}")
                config.profiles.append(profile)
            elif kind == "log":
                log = self.logs.get(target)
                if log is None:
                    raise AppError("missing", f"Logger does not exist: {target}")
                config.logs.append(log)
            else:
                raise AppError("missing", f"Unknown binding type: {kind}")

    def _query(self, dialog: SimDialog, w: list[str]) -> None:
        prompt_arg = w[3]
        # genie-app: a file that opens is read whole; anything else IS the prompt.
        try:
            prompt = self.env.host(prompt_arg).read_bytes().decode("utf-8", "surrogateescape")
        except (OSError, ValueError):  # ValueError: a NUL in the word, no such path
            prompt = prompt_arg
        file_sink = None
        if len(w) == 5:
            try:
                file_sink = FileSink(self.env.host(w[4]))
            except (OSError, ValueError):
                raise AppError("output", f"Could not open output file: {w[4]}") from None
        self.out.write(f"[PROMPT]: {prompt}\n")
        try:
            dialog.query(prompt, file_sink or ConsoleSink(self.out.write))
        finally:
            if file_sink is not None:
                file_sink.close()

    def _token_query(self, dialog: SimDialog, w: list[str]) -> None:
        """``dialog tokenQuery D TOKENS_PATH [OUTPUT_FILE]`` as [SRC] reads it: ids from each
        line (``iss >> uint32`` stops a line at its first non-number), no [PROMPT] echo, the
        reply written as ids. Control ids are control tokens, ordinary ids text."""
        try:
            text = self.env.host(w[3]).read_bytes().decode("utf-8", "replace")
        except (OSError, ValueError):
            raise AppError("tokens", "Token file doesn't exists or is in bad shape.") from None
        tokens: list[int] = []
        for line in text.splitlines():
            for word in line.split():
                if not word.isdigit():
                    break
                tokens.append(int(word))
        file_sink = None
        if len(w) == 5:
            try:
                file_sink = FileSink(self.env.host(w[4]))
            except (OSError, ValueError):
                raise AppError("output", f"Could not open output file: {w[4]}") from None
        try:
            if not tokens:
                raise AppError("tokens", "Invalid token input.")
            view = dialog.tokenizer.prompt_view(tokens)
            dialog.query(view, file_sink or ConsoleSink(self.out.write), ids=tokens)
        finally:
            if file_sink is not None:
                file_sink.close()

    # ---- profile and log -------------------------------------------------------------

    def profile(self, w: list[str]) -> None:
        n = len(w)
        sub = w[1] if n > 1 else ""
        if sub == "config" and self.new:
            if n < 3 or (w[2], n) not in (("create", 5), ("free", 4)):
                raise _ill(w)
            if w[2] == "create":
                if w[3] in self.profile_configs:
                    raise AppError("exists", f"Profile config already exists: {w[3]}")
                text = self.env.read_text(w[4])
                if text is None:
                    raise AppError("open", f"Could not open JSON config file: {w[4]}.")
                self.profile_configs[w[3]] = text
            else:
                if self.profile_configs.pop(w[3], None) is None:
                    raise AppError("missing", f"Profile config does not exist: {w[3]}")
            return
        if sub == "create":
            if n not in ((3, 4) if self.new else (3,)):
                raise _ill(w)
            if w[2] in self.profiles:
                raise AppError("exists", f"Profile already exists: {w[2]}")
            if n == 4 and w[3] not in self.profile_configs:
                raise AppError("missing", f"Profile config does not exist: {w[3]}")
            self.profiles[w[2]] = SimProfile()
        elif sub == "free" and n == 3:
            if self.profiles.pop(w[2], None) is None:
                raise AppError("missing", f"Profile does not exist: {w[2]}")
        elif sub == "save" and n == 4:
            profile = self.profiles.get(w[2])
            if profile is None:
                raise AppError("missing", f"Profile does not exist: {w[2]}")
            try:
                self.env.host(w[3]).write_text(json.dumps(profile.document(), indent=2))
            except OSError:
                raise AppError(
                    "output", f"Cannot create profile output file with name:{w[3]}"
                ) from None
        else:
            raise _ill(w)

    def log(self, w: list[str]) -> None:
        n = len(w)
        sub = w[1] if n > 1 else ""
        if sub == "create" and n in (4, 5):
            name, level = w[2], w[3]
            if level not in LOG_LEVELS:
                raise AppError("loglevel", f"Invalid log level: {level}")
            if name in self.logs:
                raise AppError("exists", f"Logger already exists: {name}")
            path = self.env.host(w[4]) if n == 5 else None
            try:
                self.logs[name] = SimLog(level=level, path=path)
            except OSError:
                raise AppError("open", f"Could not open log output file: {w[4]}.") from None
        elif sub == "free" and n == 3:
            if self.logs.pop(w[2], None) is None:
                raise AppError("missing", f"Logger does not exist: {w[2]}")
        else:
            raise _ill(w)


def _library_failure(failure: LaunchFailure, out: Out) -> QueryFailed:
    """A libGenie call failed: its log lines go out now, its last line is the red what()."""
    for line in failure.lines[:-1]:
        out.err(line)
    return QueryFailed(failure.lines[-1] if failure.lines else "Genie call failed.")


def _parse_args(argv: list[str]) -> tuple[list[str] | None, str | None]:
    """(script paths, error) as parseCommandLineInput: -h first, then -s FILE pairs."""
    if any(a in ("-h", "--help") for a in argv):
        return None, None
    scripts: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-s", "--script"):
            if i + 1 == len(argv):
                return [], str(AppError("option", "Missing script file."))
            scripts.append(argv[i + 1])
            i += 2
        else:
            return [], str(AppError("option", f"Invalid option: {arg}."))
    return scripts, None


def main(argv: list[str], *, prog: str = "genie-app") -> int:
    # Python installs a SIGINT handler and ignores SIGPIPE; the real binary does neither.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    out = Out()
    # The notice is for a person at the emulated phone's shell (a terminal). A program reading
    # genie-app's stderr through a pipe (qwenchat) gets what the real binary writes there:
    # only its errors. (The phone says it is emulated elsewhere: ro.qwenchat.simulated, the
    # `version` reply, the bundle's SIMULATED marker token.)
    if os.isatty(2):
        out.err(BANNER)
    try:
        link = EmulatorLink()
        settings = link.settings()
    except NotOnEmulator as exc:
        out.err(f"genie-app (SIMULATED): not on the qwenchat emulated phone: {exc}")
        return 1
    env = Env(os.getcwd())
    try:
        version = runtime.find_libgenie(env, os.environ.get("LD_LIBRARY_PATH"), prog)
    except LaunchFailure as failure:
        for line in failure.lines:
            out.err(line)
        return 1
    build = str((settings.profile or {}).get("genie_app_build", DEFAULT_BUILD))
    if build not in BUILDS:
        out.err(f"SIMULATED: unknown genie_app_build {build!r} in the device profile; using new")
        build = DEFAULT_BUILD

    scripts, error = _parse_args(argv)
    if scripts is None:
        out.write(usage(build))
        return 0
    if error is not None:
        out.err(f"{RED}{error}{RESET}\n")
        out.write(usage(build))
        return 1
    app = App(build=build, version=version, env=env, link=link, out=out)
    status = 0
    try:
        for path in scripts:
            if app.run_script(path):
                status = 1
    except SystemExit:  # the `exit` command: everything freed, status 0
        return 0
    app.cleanup()
    return status


def _sampler_config(text: str) -> dict:
    """GenieSamplerConfig_createFromJson: ``{"sampler": {"seed": .., "temp": .., "top-k": ..,
    "top-p": ..}}``; anything else fails as the library does."""
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        raise QueryFailed("Failed to create the sampler config.") from None
    sampler = doc.get("sampler") if isinstance(doc, dict) else None
    if not isinstance(sampler, dict):
        raise QueryFailed("Failed to create the sampler config.")
    return dict(sampler)
