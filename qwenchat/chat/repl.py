"""The interactive chat loop: prompt, slash commands, Ctrl-C, offers.

Slash commands: /help /clear /system /set /stats /save /load /regen /continue /exit.
``\"\"\"`` starts and ends multi-line input. Ctrl-C during a reply stops generation on the
phone (the session kills exactly that process) and returns to the prompt; Ctrl-D exits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from qwenchat.chat.interrupt import cancel_on_interrupt
from qwenchat.chat.render import ReplyStream, figures_line, print_figures
from qwenchat.chat.session import ContextBudgetError, StopReason, parse_set_command
from qwenchat.errors import QwenchatError, UsageError
from qwenchat.paths import data_dir

if TYPE_CHECKING:
    from qwenchat.chat.session import ChatSession, ReplyResult

HELP = """\
/help               this help
/clear              start a new conversation (keeps /system and /set)
/system TEXT        set the system prompt (empty: Qwen's default); the state is rebuilt
/set k=v ...        temp=0.7 top_k=40 top_p=0.95 seed=1 max_tokens=256
/stats              figures of the last reply and of the session
/save FILE          save the transcript as JSON
/load FILE          load a transcript saved with /save (rebuilt on the phone next turn)
/regen              generate the last reply again
/continue           continue a reply that stopped at max tokens
/exit               leave (Ctrl-D too)
\"\"\"                 start/end multi-line input
Ctrl-C              stop the reply being generated (on the phone)"""

COMMANDS = ("help", "clear", "system", "set", "stats", "save", "load", "regen", "continue", "exit")


@dataclass(frozen=True)
class Command:
    name: str
    arg: str


def parse_command(line: str) -> Command | None:
    """A slash command, or None for a message. Unknown commands raise UsageError."""
    stripped = line.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    name, _, arg = stripped[1:].partition(" ")
    name = name.lower()
    if name in ("quit", "bye"):
        name = "exit"
    if name not in COMMANDS:
        raise UsageError(f"unknown command /{name}", hint="Type /help for the commands.")
    return Command(name, arg.strip())


class LineReader:
    """input() with readline history (imported lazily) and \"\"\" blocks."""

    def __init__(self, input_fn: Callable[[str], str] | None = None) -> None:
        self.input_fn = input_fn or input
        if input_fn is None:
            self._setup_readline()

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # not on every platform; line editing is a nicety
            return

        self._history = data_dir() / "chat_history"
        try:
            readline.read_history_file(self._history)
        except OSError:
            pass
        readline.set_history_length(1000)
        import atexit

        atexit.register(self._save_history)

    def _save_history(self) -> None:
        try:
            import readline

            readline.write_history_file(self._history)
        except OSError:
            pass

    def read(self) -> str:
        """One message or command; raises EOFError on Ctrl-D."""
        line = self.input_fn(">>> ")
        if not line.lstrip().startswith('"""'):
            return line
        first = line.lstrip()[3:]
        if first.rstrip().endswith('"""') and first.strip():
            return first.rstrip()[:-3]
        lines = [first] if first else []
        while True:
            more = self.input_fn("... ")
            if more.rstrip().endswith('"""'):
                tail = more.rstrip()[:-3]
                if tail:
                    lines.append(tail)
                return "\n".join(lines)
            lines.append(more)


class Repl:
    def __init__(
        self,
        session: ChatSession,
        *,
        reader: LineReader | None = None,
        out: TextIO | None = None,
        confirm: Callable[[str], bool] | None = None,
    ) -> None:
        self.session = session
        self.reader = reader or LineReader()
        self.out = out if out is not None else sys.stdout
        self.confirm = confirm or self._ask

    def _ask(self, question: str) -> bool:
        try:
            answer = self.reader.input_fn(f"{question} [Y/n] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("", "y", "yes")

    def say(self, text: str, style: str = "dim") -> None:
        from rich.console import Console
        from rich.markup import escape

        Console(file=self.out, highlight=False).print(f"[{style}]{escape(text)}[/]")

    def error(self, exc: QwenchatError) -> None:
        self.say(f"error: {exc.message}", "bold red")
        if exc.hint:
            self.say(f"hint: {exc.hint}")

    def run(self) -> int:
        s = self.session
        sim = " (SIMULATED phone)" if s.info.simulated else ""
        self.say(f"qwenchat · {s.info.model} {s.info.soc}{sim} · /help for commands, Ctrl-D exits")
        while True:
            try:
                line = self.reader.read()
            except EOFError:
                self.out.write("\n")
                return 0
            except KeyboardInterrupt:
                self.out.write("\n")
                continue
            try:
                command = parse_command(line)
                if command is None:
                    if line.strip():
                        self.reply(lambda on_text, text=line: s.send(text, on_text), line)
                    continue
                if command.name == "exit":
                    return 0
                self.command(command)
            except QwenchatError as exc:
                self.error(exc)

    def command(self, command: Command) -> None:
        s = self.session
        name, arg = command.name, command.arg
        if name == "help":
            self.out.write(HELP + "\n")
        elif name == "clear":
            s.clear()
            self.say("new conversation")
        elif name == "system":
            s.set_system(arg or None)
            self.say("system prompt set; the dialog state will be rebuilt on the next turn")
        elif name == "set":

            if not arg:
                self.say(f"settings: {s.settings.as_dict() or 'bundle defaults'}"
                         f" · max_tokens {s.max_tokens}")
                return
            s.update_settings(**parse_set_command(arg))
            self.say(f"settings: {s.settings.as_dict()} (no rebuild needed)")
        elif name == "stats":
            self.stats()
        elif name == "save":
            if not arg:
                raise UsageError("/save needs a file name")
            s.save_transcript(Path(arg).expanduser())
            self.say(f"saved {len(s.messages)} messages to {arg}")
        elif name == "load":
            if not arg:
                raise UsageError("/load needs a file name")
            try:
                data = json.loads(Path(arg).expanduser().read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read transcript {arg}: {exc}") from None
            s.load_transcript(data)
            self.say(f"loaded {len(s.messages)} messages; the phone state is rebuilt next turn")
        elif name == "regen":
            self.reply(s.regenerate, None)
        elif name == "continue":
            self.say("continuing: rebuilding the state with the reply left open")
            self.reply(s.continue_reply, None)

    def stats(self) -> None:

        s = self.session
        self.say(
            f"session {s.session_id} · {len(s.messages)} messages · {s.turns_done} replies"
            f" · ctx used {s.state.tokens if s.state.valid else '?'}/{s.ctx_size}"
            f" · state on phone: {'yes' if s.state.valid else 'rebuild next turn'}"
        )
        if s.last is not None:
            self.say("last reply: " + figures_line(s.last))

    def reply(self, action: Callable[..., ReplyResult], user_text: str | None) -> None:

        stream = ReplyStream(self.out)
        try:
            with cancel_on_interrupt(self.session):
                result = action(stream.write)
        except ContextBudgetError as exc:
            self.error(exc)
            if exc.drop_turns and user_text is not None and self.confirm(
                f"drop the {exc.drop_turns} oldest turn(s) and rebuild?"
            ):
                self.session.drop_oldest(exc.drop_turns)
                self.reply(lambda on_text: self.session.send(user_text, on_text), user_text)
            return
        stream.finish()
        if result.stop is StopReason.CUT:
            self.say("[cut: generation stopped on the phone; the next turn rebuilds the state]")
        print_figures(result, self.out)
        if result.stop is StopReason.MAX_TOKENS and self.confirm(
            "the reply stopped at max tokens; continue it (rebuilds the state with the turn open)?"
        ):
            self.reply(self.session.continue_reply, None)


__all__ = ["Command", "LineReader", "Repl", "parse_command"]
