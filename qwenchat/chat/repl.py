"""The interactive chat loop: prompt, slash commands, signals, offers, a phone that vanishes.

Slash commands: /help /clear /system /set /stats /save /load /regen /continue /exit.
``\"\"\"`` starts and ends multi-line input; a paste is one message (``lines.py``). Ctrl-C
during a reply stops generation on the phone (the session kills exactly that process) and
returns to the prompt; SIGTERM/SIGHUP do the same, then end the chat; Ctrl-D exits. However
the chat ends, its dialog state is removed from the phone. Bad input gets one line and the
chat goes on with nothing lost.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from qwenchat.chat.interrupt import cancel_on_interrupt
from qwenchat.chat.lines import LineReader
from qwenchat.chat.link import PhoneLink
from qwenchat.chat.outcome import StopReason
from qwenchat.chat.render import ReplyStream, figures_line, print_figures
from qwenchat.chat.session import ContextBudgetError
from qwenchat.errors import DeviceLostError, QwenchatError, UsageError
from qwenchat.signals import Terminated

if TYPE_CHECKING:
    from qwenchat.chat.outcome import ReplyResult
    from qwenchat.chat.session import ChatSession

HELP = """\
/help               this help
/clear              start a new conversation (keeps /system and /set; a live session's
                    dialog is reset, the model stays loaded)
/system TEXT        set the system prompt (empty: the model's default); the state is rebuilt
/set k=v ...        temp=0.7 top_k=40 top_p=0.95 seed=1 max_tokens=256
/stats              figures of the last reply and of the session
/save FILE          save the transcript as JSON
/load FILE          load a transcript saved with /save (rebuilt on the phone next turn)
/regen              generate the last reply again
/continue           continue a reply that stopped at max tokens
/exit               leave (Ctrl-D too)
\"\"\"                 start/end multi-line input (a paste is one message anyway)
Ctrl-C              stop the reply being generated (on the phone)"""

COMMANDS = ("help", "clear", "system", "set", "stats", "save", "load", "regen", "continue", "exit")

Action = Callable[..., "ReplyResult"]


@dataclass(frozen=True)
class Command:
    name: str
    arg: str


def parse_command(line: str) -> Command | None:
    """A slash command, or None for a message. Unknown commands raise UsageError."""
    stripped = line.strip()
    if not stripped.startswith("/") or stripped.startswith("//") or "\n" in stripped:
        return None
    name, _, arg = stripped[1:].partition(" ")
    name = name.lower()
    if name in ("quit", "bye"):
        name = "exit"
    if name not in COMMANDS:
        raise UsageError(f"unknown command /{name}", hint="Type /help for the commands.")
    if name in NO_ARGUMENT and arg.strip():
        raise UsageError(f"/{name} takes no argument (got {arg.strip()!r}); nothing was done",
                         hint=f"Type /{name} alone.")
    return Command(name, arg.strip())


# Commands that act on their own: words after them are a mistake, never ignored.
NO_ARGUMENT = frozenset({"help", "clear", "stats", "regen", "continue", "exit"})


def engine_line(name: str) -> str:
    """How this chat runs Genie, in one line."""
    if name == "session":
        return (
            "engine: session (genie-app keeps the model loaded for the whole chat; "
            "the first reply pays the load)"
        )
    return "engine: one genie-t2t-run per turn (the model loads again every turn)"


class Repl:
    def __init__(
        self,
        session: ChatSession,
        *,
        reader: LineReader | None = None,
        out: TextIO | None = None,
        confirm: Callable[[str], bool] | None = None,
        link: PhoneLink | None = None,
    ) -> None:
        self.session = session
        self.reader = reader or LineReader()
        self.out = out if out is not None else sys.stdout
        self.confirm = confirm or self._ask
        self.link = link or PhoneLink()

    def _ask(self, question: str) -> bool:
        try:
            answer = self.reader.ask(f"{question} [Y/n] ")
        except EOFError:
            return False
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                raise
            self._write("\n")
            return False
        word = answer.strip().lower()
        if word in ("", "y", "yes"):
            return True
        if word not in ("n", "no"):
            # Not an answer: the user went on typing (or typed ahead while the reply
            # streamed). The line is theirs: it is read again as the next message.
            self.reader.push_back(answer)
            self.say("(taken as no; your line is kept as the next message)")
        return False

    def _ask_replace(self, question: str) -> bool:
        """Replacing a file takes an explicit yes (Enter keeps the file)."""
        try:
            answer = self.reader.ask(f"{question} [y/N] ")
        except (EOFError, KeyboardInterrupt) as exc:
            if isinstance(exc, Terminated):
                raise
            return False
        return answer.strip().lower() in ("y", "yes")

    # ----- output that survives a terminal that went away (SIGHUP)
    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            pass

    def say(self, text: str, style: str = "dim") -> None:
        from rich.console import Console
        from rich.markup import escape

        try:
            Console(file=self.out, highlight=False, soft_wrap=True).print(f"[{style}]{escape(text)}[/]")
        except (OSError, ValueError):
            pass

    def error(self, exc: QwenchatError) -> None:
        self.say(f"error: {exc.message}", "bold red")
        if exc.hint:
            self.say(f"hint: {exc.hint}")

    def _model_note(self, name: str | None) -> None:
        """A transcript written with another (or an unknown) model is loaded as text, and
        the user is told which model continues it."""
        from qwenchat.models.registry import get_model

        ours = self.session.model_name
        if name is None or name == ours:
            return
        try:
            theirs = get_model(name).name
        except QwenchatError:
            self.say(f"note: the transcript names an unknown model {name!r}; its messages are "
                     f"loaded as text and {ours} continues it", "yellow")
            return
        if theirs != ours:
            self.say(f"note: the transcript was written with {theirs}; {ours} continues it "
                     "(its messages are loaded as text)", "yellow")

    def plain_text_note(self, text: str, what: str) -> None:
        """Says so when the text held the model's control markers (sent as plain text)."""
        from qwenchat.models.user_text import notice

        line = notice(text, self.session.model, what=what)
        if line:
            self.say(line, "yellow")

    # ----- the loop
    def run(self) -> int:
        s = self.session
        sim = " (SIMULATED phone)" if s.info.simulated else ""
        llm = s.model.display_name if s.model is not None else ""
        self.say(
            f"qwenchat · {llm} on {s.info.model} {s.info.soc}{sim} · /help for commands, "
            "Ctrl-D exits"
        )
        for note in getattr(s.engine, "notes", ()):
            self.say(f"note: {note}", "yellow")  # a fallback says why, once
        self.say(engine_line(s.engine.name))
        try:
            return self._loop()
        finally:
            # However the chat ends (/exit, Ctrl-D, SIGTERM, an error): its dialog state
            # (the KV cache: large) leaves the phone with it.
            s.end()
            self.link.close()

    def _loop(self) -> int:
        s = self.session
        while True:
            try:
                line = self.reader.read()
            except EOFError:
                self._write("\n")
                return 0
            except KeyboardInterrupt as exc:
                if isinstance(exc, Terminated):
                    raise
                self._write("\n")
                continue
            except QwenchatError as exc:  # e.g. a line that is not UTF-8
                self.error(exc)
                continue
            entered = time.monotonic()
            try:
                command = parse_command(line)
                if command is None:
                    if line.strip():
                        self.plain_text_note(line, "your message")
                        self.reply(
                            lambda on_text, text=line, at=entered: s.send(
                                text, on_text, entered_at=at
                            ),
                            line,
                        )
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
            self._write(HELP + "\n")
        elif name == "clear":
            s.clear()
            self.say("new conversation")
        elif name == "system":
            s.set_system(arg or None)
            self.plain_text_note(arg, "the system prompt")
            self.say("system prompt set; the dialog state will be rebuilt on the next turn")
        elif name == "set":
            if not arg:
                self.say(f"settings: {s.settings.as_dict() or 'bundle defaults'}"
                         f" · max_tokens {s.max_tokens}")
                return
            values = s.parse_set(arg)
            s.update_settings(**values)
            if not s.engine.sampler_per_query and set(values) - {"max_tokens"}:
                # An older genie-app's sampler lives in the live dialog's config: a new one
                # means a new dialog (a newer one applies it: `sampler applyConfig`).
                self.say(
                    f"settings: {s.settings.as_dict()} (the live dialog is created again on "
                    "the next turn: one model load, the conversation rebuilt)"
                )
            else:
                self.say(f"settings: {s.settings.as_dict()} (no rebuild needed)")
        elif name == "stats":
            self.stats()
        elif name == "save":
            if not arg:
                raise UsageError("/save needs a file name", hint="e.g. /save chat.json")
            from qwenchat.output_file import check_output_path

            path = Path(arg).expanduser()
            if path.is_file():  # never qwenchat's own store; another file only after a yes
                path = check_output_path(arg, option="/save", ask=self._ask_replace)
            s.save_transcript(path)
            self.say(f"saved {len(s.messages)} messages to {arg}")
        elif name == "load":
            if not arg:
                raise UsageError("/load needs a file name", hint="e.g. /load chat.json")
            from qwenchat.chat.transcript import read_transcript

            # Read and checked whole before the session is touched: a bad file changes nothing.
            # Ctrl-C while it is read cancels the load only, not the chat.
            try:
                transcript = read_transcript(Path(arg).expanduser(), ctx_size=s.ctx_size)
            except KeyboardInterrupt as exc:
                if isinstance(exc, Terminated):
                    raise
                self.say("load cancelled; the chat is as it was")
                return
            self._model_note(transcript.model)
            s.load_transcript(transcript)
            self.say(f"loaded {len(s.messages)} messages; the phone state is rebuilt next turn")
            texts = [transcript.system or ""] + [m.content for m in s.messages]
            self.plain_text_note("\n".join(texts), "the loaded transcript")
        elif name == "regen":
            at = time.monotonic()
            self.reply(lambda on_text: s.regenerate(on_text, entered_at=at), None)
        elif name == "continue":
            at = time.monotonic()
            last = s.messages[-1] if s.messages else None
            if last is None or last.role != "assistant":
                raise UsageError("no reply to continue")  # before announcing anything
            self.say("continuing: rebuilding the state with the reply left open")
            self.reply(lambda on_text: s.continue_reply(on_text, entered_at=at), None)

    def stats(self) -> None:
        s = self.session
        self.say(
            f"session {s.session_id} · {s.model_name} · engine {s.engine.name}"
            f" · {len(s.messages)} messages"
            f" · {s.turns_done} replies"
            f" · ctx used {s.state.tokens if s.state.valid else '?'}/{s.ctx_size}"
            f" · state on phone: {'yes' if s.state.valid else 'rebuild next turn'}"
            + (" · phone: gone" if s.lost else "")
        )
        if s.last is not None:
            self.say("last reply: " + figures_line(s.last))

    # ----- one reply
    def reply(self, action: Action, user_text: str | None) -> None:
        if self.session.lost and not self._reconnect():
            return
        stream = ReplyStream(self.out)
        try:
            with cancel_on_interrupt(self.session):
                result = action(stream.write)
                self._finish_stream(stream)
                self._say_notices()
                self.show(result)
        except ContextBudgetError as exc:
            self.error(exc)
            if exc.drop_turns and user_text is not None and self.confirm(
                f"drop the {exc.drop_turns} oldest turn(s) and rebuild?"
            ):
                self.session.drop_oldest(exc.drop_turns)
                at = time.monotonic()
                self.reply(
                    lambda on_text: self.session.send(user_text, on_text, entered_at=at),
                    user_text,
                )
            return
        except DeviceLostError as exc:
            # Gone before anything was sent (nothing of this turn was stored).
            self.session.lost = True
            self.say(
                f"the phone is gone ({exc.message}); your message was not sent (↑ recalls it)."
                " The chat stays open: the next message reconnects.",
                "bold red",
            )
            return
        if result.stop is StopReason.MAX_TOKENS and self.confirm(
            "the reply stopped at max tokens; continue it (rebuilds the state with the turn open)?"
        ):
            at = time.monotonic()
            self.reply(lambda on_text: self.session.continue_reply(on_text, entered_at=at), None)

    def _say_notices(self) -> None:
        """What the chat noticed on its own during the turn (a push replaced the bundle)."""
        notices = getattr(self.session, "notices", [])
        while notices:
            self.say(f"note: {notices.pop(0)}", "yellow")

    def _finish_stream(self, stream: ReplyStream) -> None:
        try:
            stream.finish()
        except (OSError, ValueError):
            pass

    def show(self, result: ReplyResult) -> None:
        """What the user needs after a reply: its figures and, when it did not end on its
        own, what happened and what comes next."""
        if result.stop is StopReason.CUT:
            engine = self.session.engine
            if engine.holds_model:
                # `dialog abort` ended the query and genie-app kept running (a newer build).
                self.say(
                    "[cut: the reply was aborted; genie-app still holds the model, so the next "
                    "turn needs no model load (it sends the conversation again)]"
                )
            elif engine.keeps_model_loaded:
                self.say(
                    "[cut: genie-app was stopped on the phone; the next turn starts it again "
                    "(a model load) and rebuilds the conversation]"
                )
            else:
                self.say("[cut: generation stopped on the phone; the next turn rebuilds the state]")
        try:
            print_figures(result, self.out)
        except (OSError, ValueError):
            pass
        if result.stop is StopReason.DEVICE_LOST:
            self.say(
                "the phone is gone. What was printed is saved (stop: device lost). The chat "
                "stays open: when the phone is back, the next message reconnects and rebuilds "
                "the conversation.",
                "bold red",
            )
        elif result.stop is StopReason.CONTEXT_FULL:
            self.say(
                "[the context is full: the next message offers to drop the oldest turns; "
                "/clear starts over]"
            )

    def _reconnect(self) -> bool:
        self.say("reconnecting to the phone…")
        try:
            self.link.reconnect(self.session)
        except QwenchatError as exc:
            self.say(
                f"the phone is still gone ({exc.message}); your message was not sent "
                "(↑ recalls it)",
                "bold red",
            )
            if exc.hint:
                self.say(f"hint: {exc.hint}")
            return False
        self.say("reconnected: the conversation is rebuilt on the phone with this turn")
        return True


__all__ = ["Command", "LineReader", "Repl", "parse_command"]
