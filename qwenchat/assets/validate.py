"""Checks on every file push-assets takes from the user or renders, before any leaves the
host: each problem is one line saying what is wrong and what to do.

- the tokenizer is readable JSON shaped like a Hugging Face ``tokenizer.json`` and is the
  named model's (its token count and its end-of-turn token);
- the bundle is the named model's (its fetch metadata, its own genie_config's vocabulary
  and EOS, the number of parts of its export);
- every file is readable and not empty; remote names are plain relative paths;
- config values asked for on the command line are in range (usage errors, exit 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.errors import BundleError, UsageError

if TYPE_CHECKING:
    from qwenchat.genie.config import GenieConfig
    from qwenchat.manifest import HashCache
    from qwenchat.models.spec import ModelSpec

TOKENIZER_SUMMARY = "tokenizer-summary/1"
_SPECIAL_SHAPE = re.compile(r"^<[^<>\s]{1,40}>$")
_PART_COUNT = re.compile(r"_of_(\d+)(?:\.serialized)?\.bin$")


# ------------------------------------------------------------------------- command line


def check_overrides(overrides: dict[str, Any], context_limit: int, model_name: str) -> None:
    """Config values from the command line; UsageError naming the option when out of range."""
    context = overrides.get("context_size")
    if context is not None and not 1 <= context <= context_limit:
        raise UsageError(
            f"--context-size {context}: {model_name}'s context binaries hold at most "
            f"{context_limit} tokens",
            f"Give a value from 1 to {context_limit}.",
        )
    limit = context if context is not None else context_limit
    tokens = overrides.get("max_num_tokens")
    if tokens is not None and not 1 <= tokens <= limit:
        raise UsageError(
            f"--max-tokens {tokens}: must be from 1 to the context size ({limit})",
            "Leave it out to let each run set it (chat and bench do).",
        )
    temp = overrides.get("temp")
    if temp is not None and not 0 <= temp <= 100:
        raise UsageError(
            f"--temp {temp}: must be from 0 (greedy) to 100", "Qualcomm's configs use 0.8."
        )
    top_k = overrides.get("top_k")
    if top_k is not None and top_k < 0:
        raise UsageError(f"--top-k {top_k}: must be 0 or more", "Qualcomm's configs use 40.")
    top_p = overrides.get("top_p")
    if top_p is not None and not 0 <= top_p <= 1:
        raise UsageError(f"--top-p {top_p}: must be from 0 to 1", "Qualcomm's configs use 0.95.")
    seed = overrides.get("seed")
    if seed is not None and not 0 <= seed < 2**32:
        raise UsageError(
            f"--seed {seed}: must be from 0 to {2**32 - 1}", "Any whole number in that range."
        )


# -------------------------------------------------------------------------- host files


def check_readable(path: Path, what: str) -> None:
    """Open and read the first byte: a file we cannot read fails here, named, not halfway
    through a push (root ignores permissions, but not I/O errors)."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise BundleError(
            f"cannot read {what} {path}: {exc.strerror or exc}",
            "Check the file's permissions and the disk it is on.",
        ) from None


def check_not_empty(path: Path, size: int, what: str) -> None:
    if size == 0:
        raise BundleError(
            f"{what} {path} is empty (0 bytes)",
            "The copy is incomplete: copy or download it again.",
        )


_SAFE_REMOTE = re.compile(r"^[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*$")


def check_remote_name(remote: str, local: Path | None) -> None:
    """Names go into shell commands (quoted) and one-line journals: plain names only."""
    parts = remote.split("/")
    if not _SAFE_REMOTE.match(remote) or any(p in (".", "..") for p in parts):
        raise BundleError(
            f"cannot push {local or remote}: its name {remote.rsplit('/', 1)[-1]!r} has "
            "characters the phone's tools handle badly",
            "Rename it with letters, digits, '.', '_', '-' only (and say so in genie_config.json).",
        )


# ---------------------------------------------------------------------------- tokenizer


def _read_tokenizer(path: Path) -> dict:
    """Facts about a tokenizer.json (cached by the caller): token count and added tokens."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(
            f"cannot read tokenizer {path}: {exc.strerror or exc}",
            "Check the file's permissions and the disk it is on.",
        ) from None
    if not raw.strip():
        raise BundleError(
            f"tokenizer {path} is empty", "Copy the model's tokenizer.json again (--tokenizer)."
        )
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BundleError(
            f"tokenizer {path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            "It is not a tokenizer.json: pass the model's own with --tokenizer.",
        ) from None
    except json.JSONDecodeError as exc:
        # A tokenizer.json is one object: begun but not closed means the copy was cut short.
        body = raw.strip()
        truncated = body.startswith(b"{") and not body.endswith(b"}")
        raise BundleError(
            f"tokenizer {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}){': the file looks truncated' if truncated else ''}",
            "Copy the model's tokenizer.json again, or pass the right one with --tokenizer.",
        ) from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or "vocab" not in model:
        raise BundleError(
            f"tokenizer {path} is JSON but not a Hugging Face tokenizer.json "
            "(no model.vocab section)",
            "Pass the model's tokenizer.json (the file the tokenizers library writes).",
        )
    vocab = model["vocab"]
    ids: set[int] = set()
    if isinstance(vocab, dict):  # BPE, WordPiece, WordLevel: token -> id
        ids.update(v for v in vocab.values() if isinstance(v, int))
    elif isinstance(vocab, list):  # Unigram: [token, score] in id order
        ids.update(range(len(vocab)))
    added = [t for t in data.get("added_tokens") or [] if isinstance(t, dict)]
    ids.update(t["id"] for t in added if isinstance(t.get("id"), int))
    contents = [str(t.get("content", "")) for t in added]
    if isinstance(vocab, dict):
        # An end-of-turn token may be an ordinary vocabulary entry (Llama's "</s>"): keep the
        # entries shaped like one (a few hundred at most), not the whole vocabulary.
        contents += [k for k in vocab if isinstance(k, str) and _SPECIAL_SHAPE.match(k)]
    elif isinstance(vocab, list):
        pieces = (p[0] for p in vocab if isinstance(p, list) and p and isinstance(p[0], str))
        contents += [k for k in pieces if _SPECIAL_SHAPE.match(k)]
    return {"format": TOKENIZER_SUMMARY, "tokens": len(ids), "special": sorted(set(contents))}


def check_tokenizer(path: Path, spec: ModelSpec, cache: HashCache | None) -> None:
    """The file is a readable tokenizer.json and it is ``spec``'s."""
    summary = (
        cache.summary(path, TOKENIZER_SUMMARY, _read_tokenizer)
        if cache is not None
        else _read_tokenizer(path)
    )
    if summary.get("format") != TOKENIZER_SUMMARY:
        summary = _read_tokenizer(path)
    want = spec.tokenizer.vocab_size
    eot = spec.chat.end_of_turn.strip()
    problems = []
    if summary["tokens"] != want:
        problems.append(f"{summary['tokens']:,} tokens (it needs {want:,})")
    if eot and eot not in summary["special"]:
        problems.append(f"no {eot} token")
    if problems:
        raise BundleError(
            f"tokenizer {path} is not {spec.display_name}'s: {' and '.join(problems)}",
            f"Use {spec.display_name}'s own tokenizer.json (--tokenizer FILE), or pass "
            "--model for the model this tokenizer belongs to.",
        )


# -------------------------------------------------------------------------- model identity


def bundle_metadata_model(bundle_dir: Path) -> str | None:
    """The model a fetched bundle says it is (``qwenchat fetch`` writes manifest.json with
    ``model.name``); None for a folder of unknown origin."""
    try:
        data = json.loads((Path(bundle_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, dict):
        model = model.get("name")
    return model.strip() if isinstance(model, str) and model.strip() else None


def check_bundle_model(bundle_dir: Path, spec: ModelSpec) -> None:
    from qwenchat.errors import QwenchatError
    from qwenchat.models.registry import get_model

    named = bundle_metadata_model(bundle_dir)
    if named is None:
        return
    try:
        other = get_model(named)
    except QwenchatError:
        other = None
    if other is not None and other.name == spec.name:
        return
    label = other.display_name if other is not None else named
    switch = f"pass --model {other.name}" if other is not None else "pass the right --model"
    raise BundleError(
        f"the bundle in {bundle_dir} was made for {label}, not {spec.display_name}",
        f"Push {spec.display_name}'s bundle, or {switch}.",
    )


def check_config_model(config: GenieConfig, reference: GenieConfig, spec: ModelSpec, where: str) -> None:
    """A bundle's own genie_config.json must describe the named model, judged by what the
    model is, not by the numbers of the config qwenchat ships (qai-hub-models' export writes
    its own: ``n-vocab`` = the model's ``vocab_size``, its own ``bos-token``; utils/
    llm_helpers.py ``create_genie_config``):

    - its EOS ids include the model's end-of-turn id (the tokenizer's, as our config says);
    - ``n-vocab`` (the width of the logits Genie samples from) holds every id of the model's
      tokenizer and its own EOS ids: a padded vocabulary (Qwen's 152064 for 151,665 ids) is
      the model's, a smaller one is another model's;
    - its ctx-bins, when named ``<model id>_part_N_of_M.bin`` as qai-hub-models names them,
      name this model.
    """
    eos = sorted(config.eos_tokens)
    want_eos = sorted(reference.eos_tokens)
    hint = f"Pass --model for the model this bundle is, or push {spec.display_name}'s bundle."
    if not set(want_eos) <= set(eos):
        raise BundleError(
            f"{where} is for another model: eos {eos}; {spec.display_name} ends a turn with "
            f"{spec.chat.end_of_turn} = {want_eos}",
            hint,
        )
    n_vocab = config.dialog.context.n_vocab
    need = max([spec.tokenizer.vocab_size, *(e + 1 for e in eos)])
    if n_vocab < need:
        raise BundleError(
            f"{where} is for another model: n-vocab {n_vocab} cannot hold "
            f"{spec.display_name}'s {spec.tokenizer.vocab_size:,} token ids"
            + (f" nor its eos {max(eos)}" if max(eos, default=0) >= n_vocab else ""),
            hint,
        )
    named = _exported_model_ids(config.ctx_bins)
    if named and named != {spec.hub.model_id}:
        raise BundleError(
            f"{where} lists the parts of {', '.join(sorted(named))}, not "
            f"{spec.display_name}'s ({spec.hub.model_id}_part_N_of_M.bin)",
            hint,
        )


_EXPORT_PART = re.compile(r"^(?P<model>[a-z0-9_]+?)_part_\d+_of_\d+\.bin$")


def _exported_model_ids(ctx_bins) -> set[str]:
    """qai-hub-models names the parts it links ``<model id>_part_<i>_of_<n>`` (export.py's
    link jobs); other names (the asset store's ``weight_sharing_model_...``) name no model."""
    found = set()
    for name in ctx_bins:
        m = _EXPORT_PART.match(str(name).rsplit("/", 1)[-1])
        if m:
            found.add(m["model"])
    return found


def check_part_count(bundle_dir: Path, names: list[str], reference: GenieConfig, spec: ModelSpec) -> None:
    """An export says how many parts it has (``..._N_of_M``); the named model's export has
    as many as its shipped config lists."""
    counts = {int(m[1]) for n in names if (m := _PART_COUNT.search(n))}
    want = len(reference.ctx_bins)
    if len(counts) == 1 and (got := counts.pop()) != want:
        raise BundleError(
            f"the export in {bundle_dir} has {got} parts; {spec.display_name}'s has {want}: "
            "it looks like another model's",
            "Pass --model for the model it is; for your own export of this model, put its "
            "genie_config.json in the folder.",
        )
