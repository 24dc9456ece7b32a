"""genie-t2t-run's command line, parsed the way the real binary parses it.

The real parser (QAIRT 2.40 examples/Genie/genie-t2t-run/main.cpp) is a hand-written loop, not
getopt: options are handled in order, the config and prompt files are READ while parsing, and
--profile is refused at parse time when its file exists. Its quirks are kept on purpose
(e.g. ``-tok`` registers itself as ``--prompt_file``). Messages and streams are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

LOG_LEVELS = ("error", "warn", "info", "verbose")

USAGE = """Usage:
{prog} [options]

Options:
  -h, --help                        Show this help message and exit.

  -c CONFIG_FILE or --config CONFIG_FILE
                                    Dialog JSON configuration file.

  -p PROMPT or --prompt PROMPT      Prompt to query. Mutually exclusive with --prompt_file.

  --prompt_file PATH                Prompt to query provided as a file. Mutually exclusive with --prompt.

  -tok PATH or --tokens_file PATH   Input tokens provided as a file. Mutually exclusive with --prompt, --prompt_file and --embedding_file.

  -s PATH or --save PATH            Saves the dialog state after the dialog is queried. PATH must be an existing path.

  -r PATH or --restore PATH         Restores the dialog state before the dialog is queried. PATH must contain a previous save state.

  --log logLevel                    Enables logging. LogLevel must be one of error, warn, info, or verbose.

  --profile FILE_NAME               Enables profiling. FILE_NAME is mandatory parameter and provides name of output file with profiling data.

 --pid                              Displays genie-t2t-run process id.

(SIMULATED genie-t2t-run of the qwenchat emulator: options of the real binary not listed here
are not simulated.)
"""


@dataclass
class Args:
    config_text: str | None = None
    prompt: str = ""
    tokens: list[int] = field(default_factory=list)
    save: str | None = None
    restore: str | None = None
    profile: str | None = None
    log: str | None = None
    pid: bool = False
    options: set[str] = field(default_factory=set)


@dataclass
class ParseResult:
    args: Args | None
    exit_code: int | None = None  # set when the program must stop here
    stdout: str = ""
    stderr: str = ""


def _bad_file(path: str) -> str:
    # std::cout << std::setw(24) << "File " << name << " doesn't exists or is in bad shape."
    return f"{'File ':>24}{path} doesn't exists or is in bad shape.\n"


VALUE_OPTIONS = frozenset(
    {"-c", "--config", "-s", "--save", "-r", "--restore", "-p", "--prompt", "--prompt_file",
     "-tok", "--tokens_file", "--profile", "--log"}
)


def parse(
    argv: list[str],
    *,
    prog: str,
    read_text: Callable[[str], str | None],
    exists: Callable[[str], bool],
) -> ParseResult:
    """``read_text(path)`` returns a file's text or None; ``exists(path)`` for --profile."""
    usage = USAGE.format(prog=prog)
    if not argv:
        return ParseResult(None, 0, stdout=usage)
    a = Args()
    i = 0
    arg = ""
    invalid = False
    while i < len(argv):
        arg = argv[i]
        v = ""
        if arg in VALUE_OPTIONS:  # every option that takes a value fails the same way without one
            i += 1
            if i >= len(argv):
                invalid = True
                break
            v = argv[i]
        if arg in ("-h", "--help"):
            return ParseResult(None, 0, stdout=usage)
        if arg in ("-c", "--config"):
            text = read_text(v)
            if text is None:
                return ParseResult(None, 1, stdout=_bad_file(v))
            a.config_text = text
            a.options.add("--config")
        elif arg in ("-s", "--save"):
            a.save = v
            a.options.add("--save")
        elif arg in ("-r", "--restore"):
            a.restore = v
            a.options.add("--restore")
        elif arg in ("-p", "--prompt"):
            a.prompt = v
            a.options.add("--prompt")
        elif arg == "--prompt_file":
            text = read_text(v)
            if text is None:
                return ParseResult(None, 1, stdout=_bad_file(v))
            # std::getline(stream, g_prompt, '\0'): the whole file up to a NUL.
            a.prompt = text.split("\0", 1)[0]
            a.options.add("--prompt_file")
        elif arg in ("-tok", "--tokens_file"):
            text = read_text(v) or ""
            for word in text.split():
                try:
                    a.tokens.append(int(word))
                except ValueError:
                    break  # `iss >> token` stops at the first non-number
            a.options.add("--prompt_file")  # sic: the real binary registers it so
        elif arg == "--profile":
            if exists(v):
                return ParseResult(
                    None,
                    1,
                    stderr=f"ERROR: Invalid --profile argument. Output file {v} already exists.\n",
                )
            a.profile = v
            a.options.add("--profile")
        elif arg == "--log":
            if v not in LOG_LEVELS:
                return ParseResult(
                    None,
                    1,
                    stderr=f"ERROR: Invalid --log argument. Argument {v} is not one of "
                    "error, warn, info, or verbose.\n",
                )
            a.log = v
            a.options.add("--log")
        elif arg == "--pid":
            a.pid = True
            a.options.add("--pid")
        else:
            return ParseResult(None, 1, stdout=usage, stderr=f"Unknown option: {arg}\n")
        i += 1
    if invalid:
        return ParseResult(
            None, 1, stdout=usage, stderr=f"ERROR: Invalid parameter for argument: {arg}\n"
        )
    has_prompt = "--prompt" in a.options
    has_file = "--prompt_file" in a.options
    if not has_prompt and not has_file:
        return ParseResult(
            None, 1, stderr="ERROR:: Please provide prompt using --prompt or --prompt_file.\n"
        )
    if has_prompt and has_file:
        return ParseResult(
            None, 1, stderr="ERROR:: Please provide only one of --prompt or --prompt_file.\n"
        )
    return ParseResult(a)
