"""POSIX shell syntax for the emulated phone: a lexer and a recursive-descent parser.

The parser keeps quoting in the tree (each word is a list of parts that know whether they
were quoted) because word splitting and globbing happen later, on expansion, and only on
unquoted text. Nothing here touches a path: confinement is the interpreter's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RESERVED = {
    "if",
    "then",
    "elif",
    "else",
    "fi",
    "for",
    "in",
    "do",
    "done",
    "while",
    "until",
    "{",
    "}",
    "!",
}
OPERATORS = ("&&", "||", ";;", ">>", ">&", "<&", "<<", "&", "|", ";", "(", ")", ">", "<", "\n")


class ParseError(Exception):
    def __init__(self, message: str, *, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


# ---- words ---------------------------------------------------------------------------------


@dataclass
class Lit:
    text: str
    quoted: bool = False


@dataclass
class Param:
    name: str  # "VAR", "?", "$", "!", "#", "0".."9", "@", "*"
    quoted: bool = False
    op: str = ""  # "", ":-", "-", ":=", "=", ":+", "+", "#len"
    arg: Word | None = None


@dataclass
class CmdSub:
    source: str
    quoted: bool = False


@dataclass
class Arith:
    source: str
    quoted: bool = False


Part = Lit | Param | CmdSub | Arith


@dataclass
class Word:
    parts: list[Part] = field(default_factory=list)

    def literal(self) -> str | None:
        """The text when the word is one unquoted literal (reserved words, assignments)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lit) and not self.parts[0].quoted:
            return self.parts[0].text
        return None


# ---- tree ----------------------------------------------------------------------------------


@dataclass
class Redirect:
    fd: int
    op: str  # ">", ">>", "<", ">&", "<&"
    target: Word


@dataclass
class Simple:
    assigns: list[tuple[str, Word]]
    words: list[Word]
    redirects: list[Redirect]


@dataclass
class Group:  # { list; } or ( list )
    body: CommandList
    subshell: bool
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class If:
    branches: list[tuple[CommandList, CommandList]]
    orelse: CommandList | None
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class Loop:  # while / until
    cond: CommandList
    body: CommandList
    until: bool
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class For:
    var: str
    items: list[Word] | None  # None: "$@"
    body: CommandList
    redirects: list[Redirect] = field(default_factory=list)


Command = Simple | Group | If | Loop | For


@dataclass
class Pipeline:
    commands: list[Command]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]] = field(default_factory=list)


@dataclass
class CommandList:
    items: list[tuple[AndOr, bool]] = field(default_factory=list)  # (and_or, background)


# ---- lexer ---------------------------------------------------------------------------------


@dataclass
class Token:
    kind: str  # "word", "op", "redir", "eof"
    value: str = ""
    word: Word | None = None
    fd: int = -1


def _find_closing_paren(src: str, i: int, depth: int = 1) -> int:
    """Index just past the ')' closing a '$(' whose body starts at i; quotes respected."""
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = src.find("'", i + 1)
            if j < 0:
                raise ParseError("unterminated quote", incomplete=True)
            i = j + 1
            continue
        if c == '"':
            i = _skip_double(src, i + 1)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ParseError("missing )", incomplete=True)


def _skip_double(src: str, i: int) -> int:
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "$" and src.startswith("$(", i):
            i = _find_closing_paren(src, i + 2)
            continue
        i += 1
    raise ParseError("unterminated string", incomplete=True)


def _is_name(s: str) -> bool:
    return bool(s) and (s[0].isalpha() or s[0] == "_") and all(c.isalnum() or c == "_" for c in s)


class _WordReader:
    """Reads one word starting at src[i]; stops at blanks and operators (unless quoted)."""

    def __init__(self, src: str) -> None:
        self.src = src

    def dollar(self, i: int, quoted: bool) -> tuple[Part, int]:
        src = self.src
        # src[i] == "$"
        if src.startswith("$((", i):
            end = src.find("))", i + 3)
            if end < 0:
                raise ParseError("missing ))", incomplete=True)
            return Arith(src[i + 3 : end], quoted), end + 2
        if src.startswith("$(", i):
            end = _find_closing_paren(src, i + 2)
            return CmdSub(src[i + 2 : end - 1], quoted), end
        if src.startswith("${", i):
            end = src.find("}", i + 2)
            if end < 0:
                raise ParseError("missing }", incomplete=True)
            body = src[i + 2 : end]
            if body.startswith("#") and len(body) > 1:
                return Param(body[1:], quoted, "#len"), end + 1
            j = 0
            while j < len(body) and (body[j].isalnum() or body[j] == "_"):
                j += 1
            if j == 0 and body[:1] in ("?", "$", "!", "#", "@", "*"):
                j = 1
            name, rest = body[:j], body[j:]
            if not name:
                raise ParseError(f"${{{body}}}: bad substitution")
            for op in (":-", ":=", ":+", "-", "=", "+"):
                if rest.startswith(op):
                    arg = lex_word_text(rest[len(op) :], quoted)
                    return Param(name, quoted, op, arg), end + 1
            if rest:
                raise ParseError(f"${{{body}}}: bad substitution")
            return Param(name, quoted), end + 1
        nxt = src[i + 1 : i + 2]
        if nxt and nxt in "?$!#@*0123456789":
            return Param(nxt, quoted), i + 2
        j = i + 1
        while j < len(src) and (src[j].isalnum() or src[j] == "_"):
            j += 1
        if j == i + 1 or src[i + 1].isdigit():
            return Lit("$", quoted), i + 1
        return Param(src[i + 1 : j], quoted), j

    def backtick(self, i: int, quoted: bool) -> tuple[Part, int]:
        j = i + 1
        out = []
        while j < len(self.src) and self.src[j] != "`":
            if self.src[j] == "\\" and j + 1 < len(self.src) and self.src[j + 1] in "`$\\":
                out.append(self.src[j + 1])
                j += 2
                continue
            out.append(self.src[j])
            j += 1
        if j >= len(self.src):
            raise ParseError("unterminated `", incomplete=True)
        return CmdSub("".join(out), quoted), j + 1

    def read(self, i: int, stop_at_ops: bool = True) -> tuple[Word, int]:
        src = self.src
        parts: list[Part] = []
        buf: list[str] = []

        def flush(quoted: bool = False) -> None:
            if buf:
                parts.append(Lit("".join(buf), quoted))
                buf.clear()

        while i < len(src):
            c = src[i]
            if stop_at_ops and (c in " \t\n;&|()<>"):
                break
            if c == "\\":
                flush()
                if i + 1 >= len(src):
                    raise ParseError("trailing backslash", incomplete=True)
                if src[i + 1] == "\n":  # line continuation
                    i += 2
                    continue
                parts.append(Lit(src[i + 1], True))
                i += 2
            elif c == "'":
                flush()
                j = src.find("'", i + 1)
                if j < 0:
                    raise ParseError("unterminated quote", incomplete=True)
                parts.append(Lit(src[i + 1 : j], True))
                i = j + 1
            elif c == '"':
                flush()
                i = self.double(i + 1, parts)
            elif c == "$":
                flush()
                part, i = self.dollar(i, False)
                parts.append(part)
            elif c == "`":
                flush()
                part, i = self.backtick(i, False)
                parts.append(part)
            else:
                buf.append(c)
                i += 1
        flush()
        return Word(parts), i

    def double(self, i: int, parts: list[Part]) -> int:
        src = self.src
        buf: list[str] = []
        had_any = False

        def flush() -> None:
            nonlocal had_any
            if buf:
                parts.append(Lit("".join(buf), True))
                buf.clear()
                had_any = True

        while True:
            if i >= len(src):
                raise ParseError("unterminated string", incomplete=True)
            c = src[i]
            if c == '"':
                flush()
                if not had_any:
                    parts.append(Lit("", True))  # "" is an empty word, not no word
                return i + 1
            if c == "\\" and i + 1 < len(src) and src[i + 1] in '$`"\\\n':
                if src[i + 1] != "\n":
                    buf.append(src[i + 1])
                i += 2
            elif c == "$":
                flush()
                part, i = self.dollar(i, True)
                parts.append(part)
                had_any = True
            elif c == "`":
                flush()
                part, i = self.backtick(i, True)
                parts.append(part)
                had_any = True
            else:
                buf.append(c)
                i += 1


def lex_word_text(text: str, quoted: bool = False) -> Word:
    """A whole string as one word (for ${VAR:-word} arguments), no operators."""
    word, _ = _WordReader(text).read(0, stop_at_ops=False)
    if quoted:
        for p in word.parts:
            p.quoted = True
    return word


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    reader = _WordReader(src)
    i = 0
    at_word_start = True
    while i < len(src):
        c = src[i]
        if c in " \t":
            i += 1
            continue
        if c == "\\" and src.startswith("\\\n", i):
            i += 2
            continue
        if c == "#":
            j = src.find("\n", i)
            i = len(src) if j < 0 else j
            continue
        if c.isdigit():
            j = i
            while j < len(src) and src[j].isdigit():
                j += 1
            if j < len(src) and src[j] in "<>":
                op = _match_op(src, j)
                tokens.append(Token("redir", op, fd=int(src[i:j])))
                i = j + len(op)
                continue
        op = _match_op(src, i)
        if op:
            if op in (">", ">>", "<", ">&", "<&", "<<"):
                tokens.append(Token("redir", op, fd=0 if op.startswith("<") else 1))
            else:
                tokens.append(Token("op", op))
            i += len(op)
            continue
        word, i = reader.read(i)
        tokens.append(Token("word", word=word))
    del at_word_start
    tokens.append(Token("eof"))
    return tokens


def _match_op(src: str, i: int) -> str:
    for op in OPERATORS:
        if src.startswith(op, i):
            return op
    return ""


# ---- parser --------------------------------------------------------------------------------


class Parser:
    def __init__(self, src: str) -> None:
        self.tokens = tokenize(src)
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def peek_reserved(self) -> str | None:
        tok = self.peek()
        if tok.kind == "word" and tok.word is not None:
            lit = tok.word.literal()
            if lit in RESERVED:
                return lit
        return None

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.value in ops

    def skip_newlines(self) -> None:
        while self.is_op("\n"):
            self.next()

    def unexpected(self) -> ParseError:
        tok = self.peek()
        if tok.kind == "eof":
            return ParseError("syntax error: unexpected EOF", incomplete=True)
        text = tok.value if tok.kind != "word" else (tok.word.literal() or "word")
        text = "newline" if text == "\n" else text
        return ParseError(f"syntax error: '{text}' unexpected")

    def parse_program(self) -> CommandList:
        result = self.parse_list(terminators=())
        if self.peek().kind != "eof":
            raise self.unexpected()
        return result

    def parse_list(self, terminators: tuple[str, ...]) -> CommandList:
        result = CommandList()
        while True:
            self.skip_newlines()
            tok = self.peek()
            if tok.kind == "eof" or self.is_op(")") or self.peek_reserved() in terminators:
                return result
            and_or = self.parse_and_or()
            background = False
            if self.is_op("&"):
                self.next()
                background = True
            elif self.is_op(";", "\n"):
                self.next()
            elif not (
                self.peek().kind == "eof" or self.is_op(")") or self.peek_reserved() in terminators
            ):
                raise self.unexpected()
            result.items.append((and_or, background))

    def parse_and_or(self) -> AndOr:
        node = AndOr(self.parse_pipeline())
        while self.is_op("&&", "||"):
            op = self.next().value
            self.skip_newlines()
            node.rest.append((op, self.parse_pipeline()))
        return node

    def parse_pipeline(self) -> Pipeline:
        negate = False
        if self.peek_reserved() == "!":
            self.next()
            negate = True
        cmds = [self.parse_command()]
        while self.is_op("|"):
            self.next()
            self.skip_newlines()
            cmds.append(self.parse_command())
        return Pipeline(cmds, negate)

    def expect_reserved(self, word: str) -> None:
        if self.peek_reserved() != word:
            raise self.unexpected()
        self.next()

    def parse_redirects(self) -> list[Redirect]:
        out = []
        while self.peek().kind == "redir":
            out.append(self.parse_redirect())
        return out

    def parse_redirect(self) -> Redirect:
        tok = self.next()
        if tok.value == "<<":
            raise ParseError("here-documents are not supported by this emulated shell")
        target = self.next()
        if target.kind != "word":
            self.pos -= 1
            raise self.unexpected()
        return Redirect(tok.fd, tok.value, target.word)

    def parse_command(self) -> Command:
        reserved = self.peek_reserved()
        if self.is_op("("):
            self.next()
            body = self.parse_list(terminators=())
            if not self.is_op(")"):
                raise self.unexpected()
            self.next()
            return Group(body, True, self.parse_redirects())
        if reserved == "{":
            self.next()
            body = self.parse_list(terminators=("}",))
            self.expect_reserved("}")
            return Group(body, False, self.parse_redirects())
        if reserved == "if":
            self.next()
            branches = []
            cond = self.parse_list(terminators=("then",))
            self.expect_reserved("then")
            body = self.parse_list(terminators=("elif", "else", "fi"))
            branches.append((cond, body))
            orelse = None
            while True:
                r = self.peek_reserved()
                if r == "elif":
                    self.next()
                    cond = self.parse_list(terminators=("then",))
                    self.expect_reserved("then")
                    body = self.parse_list(terminators=("elif", "else", "fi"))
                    branches.append((cond, body))
                elif r == "else":
                    self.next()
                    orelse = self.parse_list(terminators=("fi",))
                else:
                    break
            self.expect_reserved("fi")
            return If(branches, orelse, self.parse_redirects())
        if reserved in ("while", "until"):
            self.next()
            cond = self.parse_list(terminators=("do",))
            self.expect_reserved("do")
            body = self.parse_list(terminators=("done",))
            self.expect_reserved("done")
            return Loop(cond, body, reserved == "until", self.parse_redirects())
        if reserved == "for":
            self.next()
            tok = self.next()
            name = tok.word.literal() if tok.kind == "word" and tok.word else None
            if not name or not _is_name(name):
                self.pos -= 1
                raise self.unexpected()
            items: list[Word] | None = None
            self.skip_newlines()
            if self.peek_reserved() == "in":
                self.next()
                items = []
                while self.peek().kind == "word" and self.peek_reserved() != "do":
                    items.append(self.next().word)
            if self.is_op(";", "\n"):
                self.next()
            self.skip_newlines()
            self.expect_reserved("do")
            body = self.parse_list(terminators=("done",))
            self.expect_reserved("done")
            return For(name, items, body, self.parse_redirects())
        if reserved in ("then", "elif", "else", "fi", "do", "done", "}", "in"):
            raise self.unexpected()
        return self.parse_simple()

    def parse_simple(self) -> Simple:
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirects: list[Redirect] = []
        while True:
            tok = self.peek()
            if tok.kind == "redir":
                redirects.append(self.parse_redirect())
            elif tok.kind == "word":
                self.next()
                word = tok.word
                if not words and _assignment(word) is not None:
                    assigns.append(_assignment(word))
                else:
                    words.append(word)
            else:
                break
        if not assigns and not words and not redirects:
            raise self.unexpected()
        return Simple(assigns, words, redirects)


def _assignment(word: Word) -> tuple[str, Word] | None:
    first = word.parts[0] if word.parts else None
    if not isinstance(first, Lit) or first.quoted or "=" not in first.text:
        return None
    name, _, rest = first.text.partition("=")
    if not _is_name(name):
        return None
    value_parts: list[Part] = ([Lit(rest)] if rest else []) + list(word.parts[1:])
    return name, Word(value_parts)


def parse(src: str) -> CommandList:
    return Parser(src).parse_program()
