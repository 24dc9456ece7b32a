"""Build a model's tokenizer.json + tokenizer_config.json, once per content, into the cache.

The folder is ``cache_dir()/tokenizers/<kind>-<key>`` (``<kind>-SIMULATED-<key>`` for a
stand-in), where the key hashes everything the build reads: the vocabulary files, the source
of this package, the model's chat template, the spec fields the build uses and the versions of
the libraries involved. A change to any of them builds anew; nobody has to remember to bump a
number.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.errors import ConfigError
from qwenchat.models.registry import get_model
from qwenchat.models.spec import ModelSpec
from qwenchat.models.tokenizers.baichuan2_standin import SIMULATED_MARKER
from qwenchat.models.tokenizers.recipes import RECIPES, Recipe
from qwenchat.models.tokenizers.store import atomic_write, build_once
from qwenchat.paths import cache_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR.parent / "templates"


def _spec(model: ModelSpec | str | None) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else get_model(model)


def recipe_for(spec: ModelSpec) -> Recipe:
    try:
        return RECIPES[spec.tokenizer.kind]
    except KeyError:
        raise ConfigError(
            f"{spec.display_name}: no tokenizer builder for kind {spec.tokenizer.kind!r}.",
            f"Known kinds: {', '.join(RECIPES)}.",
        ) from None


def template_path(spec: ModelSpec) -> Path:
    return TEMPLATES_DIR / spec.chat.template


def build_code() -> list[Path]:
    return sorted(PACKAGE_DIR.glob("*.py"))


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def build_key(model: ModelSpec | str | None = None) -> str:
    """``<kind>-<digest>``: the digest covers every input of the build (module docstring)."""
    spec = _spec(model)
    recipe = recipe_for(spec)
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    for path in recipe.sources():
        add("source", path.read_bytes())
    for path in build_code():
        add(f"code {path.name}", path.read_bytes())
    add("template", template_path(spec).read_bytes())
    used = {
        "kind": spec.tokenizer.kind,
        "vocab_size": spec.tokenizer.vocab_size,
        "simulated": spec.tokenizer.simulated,
        "special_tokens": spec.chat.special_tokens,
    }
    add("spec", json.dumps(used, sort_keys=True).encode())
    for package in recipe.packages:
        add("package", f"{package}={_version(package)}".encode())
    middle = "-SIMULATED" if spec.tokenizer.simulated else ""
    return f"{spec.tokenizer.kind}{middle}-{digest.hexdigest()[:16]}"


def tokenizer_dir(model: ModelSpec | str | None = None) -> Path:
    return cache_dir() / "tokenizers" / build_key(model)


def _flat_tokens(special_tokens) -> list[str]:
    tokens: list[str] = []
    for _, value in special_tokens:
        if isinstance(value, str):
            tokens.append(value)
        elif isinstance(value, tuple | list):
            tokens.extend(v for v in value if isinstance(v, str))
    return tokens


def _check(spec: ModelSpec, tokenizer: Tokenizer) -> None:
    """What the rest of qwenchat relies on: the spec's size, its special tokens as single ids."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != spec.tokenizer.vocab_size:
        raise ConfigError(
            f"{spec.display_name}'s tokenizer has {size} ids, its spec says {spec.tokenizer.vocab_size}."
        )
    for token in _flat_tokens(spec.chat.special_tokens):
        ids = tokenizer.encode(token, add_special_tokens=False).ids
        if len(ids) != 1 or ids[0] != tokenizer.token_to_id(token):
            raise ConfigError(
                f"{spec.display_name}'s tokenizer does not read {token} as one id: {ids}."
            )
    if spec.tokenizer.simulated != (tokenizer.token_to_id(SIMULATED_MARKER) is not None):
        raise ConfigError(
            f"{spec.display_name}: the tokenizer's SIMULATED marker disagrees with its spec."
        )


def build_tokenizer(model: ModelSpec | str | None, out_dir: Path) -> Path:
    """Write tokenizer.json and tokenizer_config.json into ``out_dir``; return tokenizer.json."""
    spec = _spec(model)
    recipe = recipe_for(spec)
    sources = recipe.sources()
    tokenizer, config = recipe.build(sources)
    _check(spec, tokenizer)
    config["chat_template"] = template_path(spec).read_text(encoding="utf-8")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "tokenizer.json"
    atomic_write(target, tokenizer.to_str(pretty=False))
    atomic_write(
        out_dir / "tokenizer_config.json",
        json.dumps(dict(sorted(config.items())), indent=2, ensure_ascii=False) + "\n",
    )
    return target


def ensure_tokenizer(model: ModelSpec | str | None = None) -> Path:
    """The model's cached tokenizer.json (tokenizer_config.json beside it), built on first
    use. Safe to call from several processes at once."""
    spec = _spec(model)
    final = tokenizer_dir(spec)
    return build_once(final, "tokenizer.json", lambda staging: build_tokenizer(spec, staging))


FILES = ("tokenizer.json", "tokenizer_config.json")


def write_tokenizer(model: ModelSpec | str | None, out_dir: Path) -> Path:
    """Copy the model's cached tokenizer.json and tokenizer_config.json into ``out_dir``
    (built first when the cache has none); return the copy of tokenizer.json."""
    source = ensure_tokenizer(model).parent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(source / name, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out_dir / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return out_dir / "tokenizer.json"


def is_simulated(tokenizer_json: Path) -> bool:
    """Whether a tokenizer.json is qwenchat's stand-in (a real bundle's never is). Reads the
    file as bytes: no need to load the tokenizer."""
    try:
        return SIMULATED_MARKER.encode() in Path(tokenizer_json).read_bytes()
    except OSError:
        return False
