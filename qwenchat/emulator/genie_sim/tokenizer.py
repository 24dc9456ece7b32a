"""The simulated Genie's own tokenizer: reads the bundle's tokenizer.json, as the real Genie
does, and runs BPE itself in pure Python (plus the ``regex`` module for the \\p{L}/\\p{N}
classes of Qwen's pre-tokenizer pattern).

Why its own: qwenchat counts prompt tokens on the host with Hugging Face ``tokenizers``. If
the simulated phone counted with the same library, "Genie counted N tokens" could never catch
a bug in how qwenchat builds or uses its tokenizer. This module shares no code with
``qwenchat.models`` nor with ``tokenizers``; its own correctness is checked against tiktoken
(Qwen's ranks) and node's llama-tokenizer-js (Llama 2) in tests/emulator/test_sim_tokenizer.py.

What it understands of tokenizer.json (what ``qwenchat emulator make-bundle --model M``
bundles hold; anything else is refused, never guessed):

- added tokens (special or not), split out of the raw text first, longest match first;
- normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace (a plain string), Sequence;
- pre-tokenizers Split (a regex, behaviour Isolated) and ByteLevel (with or without GPT-2's
  regex), Sequence, or none (SentencePiece: the whole stretch is one word);
- a BPE model: merges applied lowest rank first, leftmost first on a tie (a heap over a
  linked list of symbols, so a long SentencePiece stretch stays O(n log n)), with
  byte_fallback (``<0xNN>``) and unk/fuse_unk;
- decoders ByteLevel (GPT-2's byte alphabet) or Replace "▁" -> " " / ByteFallback / Fuse /
  Strip (SentencePiece's word marker).

Start-up: each query is a fresh process, so ``load`` does the least it can: one JSON parse
and two tables (merge ranks, id -> token), with the cyclic GC kept out of the way.
"""

from __future__ import annotations

import gc
import heapq
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimTokenizer", "TokenizerFileError", "load"]


class TokenizerFileError(ValueError):
    """The file is not a tokenizer.json this simulation can run (the reason says why)."""


# GPT-2's pattern, for a ByteLevel pre-tokenizer with use_regex (tokenizers' default).
_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>\Z")


def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 stands for itself, every
    other byte for chr(256 + its order among those others)."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table: list[str] = []
    extra = 0
    for b in range(256):
        if b in keep:
            table.append(chr(b))
        else:
            table.append(chr(256 + extra))
            extra += 1
    return table


BYTE_TO_CHAR = _byte_alphabet()
CHAR_TO_BYTE = {c: b for b, c in enumerate(BYTE_TO_CHAR)}


# ---- normalizers: (text, ends) -> (text, ends); ends[k] = end offset in the original text
# of the character k of the normalized text (used only to place token ends).


def _unicode_form(form: str):
    def apply(text: str, ends: list[int]) -> tuple[str, list[int]]:
        out = unicodedata.normalize(form, text)
        if out == text:
            return text, ends
        # Normalize run by run (a run: a starter and the combining marks after it), each
        # output character ending where its run ends; exact unless composition crosses runs.
        runs: list[tuple[str, int]] = []
        for c, end in zip(text, ends, strict=True):
            if runs and unicodedata.combining(c):
                runs[-1] = (runs[-1][0] + c, end)
            else:
                runs.append((c, end))
        parts = [(unicodedata.normalize(form, run), end) for run, end in runs]
        if "".join(p for p, _ in parts) == out:
            return out, [end for part, end in parts for _ in part]
        # Composition across runs (Hangul jamo...): token ends in this stretch are approximate.
        last = ends[-1] if ends else 0
        return out, [last] * len(out)

    return apply


def _prepend(prefix: str):
    def apply(text: str, ends: list[int]) -> tuple[str, list[int]]:
        if not text:
            return text, ends
        return prefix + text, [ends[0]] * len(prefix) + ends

    return apply


def _replace(pattern: str, content: str):
    def apply(text: str, ends: list[int]) -> tuple[str, list[int]]:
        if not pattern or pattern not in text:
            return text, ends
        out: list[str] = []
        mapped: list[int] = []
        i = 0
        while i < len(text):
            if text.startswith(pattern, i):
                out.append(content)
                mapped += [ends[i + len(pattern) - 1]] * len(content)
                i += len(pattern)
            else:
                out.append(text[i])
                mapped.append(ends[i])
                i += 1
        return "".join(out), mapped

    return apply


def _normalizer(spec: dict | None) -> list:
    if spec is None:
        return []
    kind = spec.get("type")
    if kind == "Sequence":
        return [step for sub in spec["normalizers"] for step in _normalizer(sub)]
    if kind in ("NFC", "NFD", "NFKC", "NFKD"):
        return [_unicode_form(kind)]
    if kind == "Prepend":
        return [_prepend(spec["prepend"])]
    if kind == "Replace":
        pattern = spec["pattern"]
        if "String" not in pattern:
            raise TokenizerFileError(f"normalizer Replace with {pattern} is not supported")
        return [_replace(pattern["String"], spec["content"])]
    raise TokenizerFileError(f"normalizer {kind!r} is not supported")


# ---- pre-tokenizers: a normalized stretch -> words (start, end) in it; byte_level says
# whether the model sees the words' UTF-8 bytes in GPT-2's alphabet.


@dataclass(frozen=True)
class _PreTokenizer:
    patterns: tuple  # compiled regexes, applied in order (Isolated splits)
    byte_level: bool
    prefix_space: bool

    def words(self, text: str) -> list[tuple[int, int]]:
        spans = [(0, len(text))] if text else []
        for pattern in self.patterns:
            out: list[tuple[int, int]] = []
            for start, end in spans:
                pos = start
                for m in pattern.finditer(text, start, end):
                    if m.start() == m.end():
                        continue
                    if m.start() > pos:
                        out.append((pos, m.start()))
                    out.append((m.start(), m.end()))
                    pos = m.end()
                if pos < end:
                    out.append((pos, end))
            spans = out
        return spans


def _pre_tokenizer(spec: dict | None) -> _PreTokenizer:
    import regex  # \p{L}, \p{N}: the standard library's re has no Unicode classes

    patterns: list = []
    byte_level = False
    prefix_space = False

    def add(step: dict) -> None:
        nonlocal byte_level, prefix_space
        kind = step.get("type")
        if kind == "Sequence":
            for sub in step["pretokenizers"]:
                add(sub)
        elif kind == "Split":
            if step.get("behavior") != "Isolated" or step.get("invert"):
                raise TokenizerFileError(
                    f"pre-tokenizer Split {step.get('behavior')} invert={step.get('invert')} "
                    "is not supported"
                )
            pattern = step["pattern"]
            source = pattern.get("Regex")
            if source is None:
                source = regex.escape(pattern["String"])
            patterns.append(regex.compile(source))
        elif kind == "ByteLevel":
            if byte_level:
                raise TokenizerFileError("two ByteLevel pre-tokenizers")
            byte_level = True
            prefix_space = bool(step.get("add_prefix_space"))
            if step.get("use_regex", True):
                patterns.append(regex.compile(_GPT2_PATTERN))
        else:
            raise TokenizerFileError(f"pre-tokenizer {kind!r} is not supported")

    if spec is not None:
        add(spec)
    return _PreTokenizer(tuple(patterns), byte_level, prefix_space)


class _Merges:
    """Merge ranks, looked up by pair; the JSON's list is indexed on the first lookup (a
    decode-only use never pays for it)."""

    def __init__(self, merges: list) -> None:
        self._ranks: dict[tuple[str, str], int] | None = None
        self._raw = merges

    def _index(self) -> dict[tuple[str, str], int]:
        raw = self._raw
        if raw and isinstance(raw[0], str):  # the older form: "left right"
            pairs = [tuple(m.split(" ")) for m in raw]
        else:
            pairs = list(map(tuple, raw))
        if any(len(p) != 2 for p in pairs):
            raise TokenizerFileError("a merge is not a pair of tokens")
        # A repeated pair keeps its last rank, as tokenizers' own map does.
        return dict(zip(pairs, range(len(pairs)), strict=True))

    def rank(self, left: str, right: str) -> int | None:
        if self._ranks is None:
            self._ranks = self._index()
            self._raw = []
        return self._ranks.get((left, right))


def _bpe(symbols: list[str], merges: _Merges) -> list[tuple[str, int]]:
    """Merge ``symbols`` (lowest rank first, leftmost first on a tie): the merged pieces,
    each with the index of the last symbol it covers."""
    n = len(symbols)
    if n < 2:
        return [(s, i) for i, s in enumerate(symbols)]
    syms: list[str | None] = list(symbols)
    last = list(range(n))
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    heap: list[tuple[int, int, str, str]] = []
    for i in range(n - 1):
        r = merges.rank(symbols[i], symbols[i + 1])
        if r is not None:
            heap.append((r, i, symbols[i], symbols[i + 1]))
    heapq.heapify(heap)
    while heap:
        _, i, a, b = heapq.heappop(heap)
        j = nxt[i]
        if j < 0 or syms[i] != a or syms[j] != b:
            continue  # stale: one side was merged since
        merged = a + b
        syms[i] = merged
        last[i] = last[j]
        syms[j] = None
        k = nxt[j]
        nxt[i] = k
        if k >= 0:
            prv[k] = i
            r = merges.rank(merged, syms[k])
            if r is not None:
                heapq.heappush(heap, (r, i, merged, syms[k]))
        p = prv[i]
        if p >= 0:
            r = merges.rank(syms[p], merged)
            if r is not None:
                heapq.heappush(heap, (r, p, syms[p], merged))
    out: list[tuple[str, int]] = []
    i = 0
    while i >= 0:
        out.append((syms[i], last[i]))  # type: ignore[arg-type]
        i = nxt[i]
    return out


@dataclass(frozen=True)
class _Added:
    content: str
    id: int
    special: bool


class SimTokenizer:
    """Encode text to ids, and each id to the bytes it stands for, as the bundle's
    tokenizer.json says."""

    def __init__(self, doc: dict, *, origin: str = "tokenizer.json") -> None:
        model = doc.get("model") or {}
        if model.get("type", "BPE") != "BPE":
            raise TokenizerFileError(f"model {model.get('type')!r} is not supported (only BPE)")
        for key in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
            if model.get(key):
                raise TokenizerFileError(f"BPE with {key} is not supported")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not isinstance(model.get("merges"), list):
            raise TokenizerFileError(f"{origin} has no BPE vocab and merges")
        self.origin = origin
        self._vocab: dict[str, int] = vocab
        self._merges = _Merges(model["merges"])
        self._byte_fallback = bool(model.get("byte_fallback"))
        self._fuse_unk = bool(model.get("fuse_unk"))
        unk = model.get("unk_token")
        self._unk_id = vocab.get(unk) if unk is not None else None

        added = []
        for entry in doc.get("added_tokens") or []:
            if entry.get("lstrip") or entry.get("rstrip") or entry.get("single_word"):
                raise TokenizerFileError(
                    f"added token {entry.get('content')!r} with lstrip/rstrip/single_word "
                    "is not supported"
                )
            added.append(_Added(entry["content"], int(entry["id"]), bool(entry.get("special"))))
        self._added = {a.content: a for a in added}
        # Longest first: an alternation takes the first that matches, so this is
        # leftmost-longest, as tokenizers' Aho-Corasick split is.
        names = sorted(self._added, key=len, reverse=True)
        self._added_re = re.compile("|".join(map(re.escape, names))) if names else None

        self._normalize = _normalizer(doc.get("normalizer"))
        self._pre = _pre_tokenizer(doc.get("pre_tokenizer"))
        self._byte_decoder = _decoder_kind(doc.get("decoder"))
        if self._pre.byte_level != (self._byte_decoder == "byte_level"):
            raise TokenizerFileError("a ByteLevel pre-tokenizer needs a ByteLevel decoder")
        if self._pre.byte_level and any(c not in vocab for c in BYTE_TO_CHAR):
            raise TokenizerFileError(f"{origin}: a byte-level vocab lacks single bytes")

        self._by_id: dict[int, str] = {}
        self._id_bytes: dict[int, bytes] = {}
        self._cache: dict[str, list[tuple[str, int]]] = {}

    def prepare(self) -> None:
        """Build the merge ranks and the id table now (``load`` does, so none of it is left
        to the first query's decode)."""
        self._merges.rank("", "")
        self._piece(0)

    # ---- lookups

    def id_of(self, token: str) -> int | None:
        """The id of an added/special token (or of a vocabulary token), None if unknown."""
        added = self._added.get(token)
        return added.id if added is not None else self._vocab.get(token)

    def _piece(self, token_id: int) -> str | None:
        if not self._by_id:
            by_id = {i: t for t, i in self._vocab.items()}
            by_id.update({a.id: a.content for a in self._added.values()})
            self._by_id = by_id
        return self._by_id.get(token_id)

    @property
    def vocab_size(self) -> int:
        ids = set(self._vocab.values()) | {a.id for a in self._added.values()}
        return len(ids)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes one id stands for (possibly part of a UTF-8 character); b"" for an
        id outside the vocabulary. An added token is its text."""
        got = self._id_bytes.get(token_id)
        if got is not None:
            return got
        piece = self._piece(token_id)
        added = None if piece is None else self._added.get(piece)
        if piece is None:
            out = b""
        elif added is not None and added.id == token_id:
            out = piece.encode("utf-8")
        elif self._byte_decoder == "byte_level":
            try:
                out = bytes(CHAR_TO_BYTE[c] for c in piece)
            except KeyError:
                out = piece.encode("utf-8")
        else:
            m = _BYTE_TOKEN.match(piece) if self._byte_decoder == "sentencepiece" else None
            if m:
                out = bytes([int(m.group(1), 16)])
            else:
                out = piece.replace("\u2581", " ").encode("utf-8")
        self._id_bytes[token_id] = out
        return out

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (invalid UTF-8 replaced), with SentencePiece's one leading
        space stripped as its decoder does."""
        text = b"".join(self.token_bytes(i) for i in ids).decode("utf-8", "replace")
        if self._byte_decoder == "sentencepiece" and text.startswith(" "):
            text = text[1:]
        return text

    def prompt_view(self, ids: list[int]) -> str:
        """What a prompt of ``ids`` says, as the simulated model reads it.

        A real Genie queried with token ids (``--tokens_file``, genie-app's ``dialog
        tokenQuery``) never looks at text: an added token's id is a control token, and the
        same characters spelt with ordinary ids are just text. The simulation reads turns from
        text, so ordinary text that spells a control token is shown with ``‹`` for its ``<``
        (as qwenchat's text path sends it, models/user_text.py): only control ids can open
        or close a turn, and a tokens-mode prompt reads like the same text-mode one.
        """
        by_id = {a.id: a.content for a in self._added.values()}
        out: list[str] = []
        pending: list[int] = []

        def flush() -> None:
            if pending:
                text = self.decode(pending) if not out else b"".join(
                    self.token_bytes(i) for i in pending).decode("utf-8", "replace")
                if self._added_re is not None:
                    text = self._added_re.sub(
                        lambda m: "\u2039" + m.group()[1:] if m.group().startswith("<")
                        else m.group(), text)
                out.append(text)
                pending.clear()

        for token_id in ids:
            control = by_id.get(token_id)
            if control is None:
                pending.append(token_id)
            else:
                flush()
                out.append(control)
        flush()
        return "".join(out)

    # ---- encoding

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, added tokens in it matched as one id; nothing added around it
        (Genie adds BOS itself when its config has one)."""
        return self.encode_with_ends(text)[0]

    def encode_with_ends(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids of ``text`` and, for each, the offset in ``text`` just after the last
        character it covers (a token inside a character ends after that character)."""
        ids: list[int] = []
        ends: list[int] = []
        pos = 0
        if self._added_re is not None:
            for m in self._added_re.finditer(text):
                if m.start() > pos:
                    self._encode_stretch(text, pos, m.start(), ids, ends)
                ids.append(self._added[m.group()].id)
                ends.append(m.end())
                pos = m.end()
        if pos < len(text):
            self._encode_stretch(text, pos, len(text), ids, ends)
        return ids, ends

    def _encode_stretch(self, text: str, start: int, stop: int, ids: list[int], ends: list[int]):
        norm = text[start:stop]
        char_ends = list(range(start + 1, stop + 1))
        for step in self._normalize:
            norm, char_ends = step(norm, char_ends)
        if self._pre.prefix_space and norm and not norm.startswith(" "):
            norm, char_ends = " " + norm, [char_ends[0], *char_ends]
        for w_start, w_end in self._pre.words(norm):
            word = norm[w_start:w_end]
            if self._pre.byte_level:
                symbols: list[str] = []
                sym_ends: list[int] = []
                for k in range(w_start, w_end):
                    for b in norm[k].encode("utf-8"):
                        symbols.append(BYTE_TO_CHAR[b])
                        sym_ends.append(char_ends[k])
            else:
                symbols = list(word)
                sym_ends = char_ends[w_start:w_end]
            pieces = self._cache.get(word)
            if pieces is None:
                pieces = _bpe(symbols, self._merges)
                if len(self._cache) < 50_000:
                    self._cache[word] = pieces
            self._emit(pieces, sym_ends, ids, ends)

    def _emit(self, pieces, sym_ends: list[int], ids: list[int], ends: list[int]) -> None:
        vocab = self._vocab
        for piece, last in pieces:
            tid = vocab.get(piece)
            end = sym_ends[last]
            if tid is not None:
                ids.append(tid)
                ends.append(end)
                continue
            if self._byte_fallback:
                fallback = [vocab.get(f"<0x{b:02X}>") for b in piece.encode("utf-8")]
                if all(f is not None for f in fallback):
                    ids += fallback  # type: ignore[arg-type]
                    ends += [end] * len(fallback)
                    continue
            if self._unk_id is None:
                raise TokenizerFileError(f"{piece!r} is not in the vocabulary and there is no unk")
            if self._fuse_unk and ids and ids[-1] == self._unk_id:
                ends[-1] = end
                continue
            ids.append(self._unk_id)
            ends.append(end)


def _decoder_kind(spec: dict | None) -> str:
    """'byte_level' (GPT-2's byte alphabet) or 'sentencepiece' (▁ and <0xNN>)."""
    if spec is None:
        raise TokenizerFileError("a tokenizer.json without a decoder is not supported")
    kind = spec.get("type")
    if kind == "ByteLevel":
        return "byte_level"
    if kind == "Sequence":
        kinds = [d.get("type") for d in spec["decoders"]]
        if "ByteFallback" in kinds or "Replace" in kinds:
            unknown = set(kinds) - {"Replace", "ByteFallback", "Fuse", "Strip"}
            if unknown:
                raise TokenizerFileError(f"decoders {sorted(unknown)} are not supported")
            return "sentencepiece"
        if kinds == ["ByteLevel"]:
            return "byte_level"
    raise TokenizerFileError(f"decoder {kind!r} is not supported")


def load(path: str | Path) -> SimTokenizer:
    """The tokenizer of a tokenizer.json file: the ONE loader of the simulated Genie (and of
    anything else on the emulated phone that tokenizes). Raises OSError when the file cannot
    be read and TokenizerFileError when it is not a tokenizer.json this simulation runs."""
    data = Path(path).read_bytes()
    # A vocabulary is ~1M objects that live as long as the process. Built with the cyclic
    # GC off (a third faster) and then frozen out of its reach: otherwise a full collection
    # (~0.2 s) would scan them at some later moment, in the middle of a timed decode.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise TokenizerFileError(f"{path} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise TokenizerFileError(f"{path} is not a tokenizer.json object")
        try:
            tokenizer = SimTokenizer(doc, origin=str(path))
            tokenizer.prepare()
        except (KeyError, TypeError, AttributeError) as exc:
            raise TokenizerFileError(f"{path}: malformed tokenizer.json ({exc!r})") from None
        del doc, data
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()
    return tokenizer
