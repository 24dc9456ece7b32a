"""Files qwenchat writes where the user says (results export -f, doctor --report, /save).

Rules (issue #27): a name that is empty or a folder is refused before any work is done;
qwenchat's own files (the store ``qwenchat.db`` and its WAL/SHM/journal, anything in the data
or cache folder) are never written over, --force or not; any other existing file is replaced
only with ``--force`` or after a "yes" on a terminal; the write is atomic (a temporary file
beside it, fsync, rename), so an interrupted write leaves the old file whole.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from qwenchat.errors import QwenchatError, UsageError


class OverwriteRefused(QwenchatError):
    """An existing file would be replaced without --force, or it is one of qwenchat's own."""


def _own_dirs() -> list[Path]:
    from qwenchat.paths import cache_dir, data_dir

    return [data_dir().resolve(), cache_dir().resolve()]


def _is_own(path: Path) -> bool:
    resolved = path.resolve()
    for folder in _own_dirs():
        if resolved == folder or folder in resolved.parents:
            return True
    from qwenchat.paths import store_path

    store = store_path()
    for own in (store, *(store.with_name(store.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            if path.exists() and own.exists() and os.path.samefile(path, own):
                return True
        except OSError:
            continue
    return False


def _ask_on_terminal(question: str) -> bool:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def check_output_path(
    name: str | os.PathLike[str] | None,
    *,
    option: str,
    force: bool = False,
    ask: Callable[[str], bool] | None = None,
) -> Path:
    """The path to write, after the checks above; raises UsageError (exit 2: a bad name) or
    OverwriteRefused (exit 1). ``ask`` (default: a y/N question when on a terminal) is
    called for an existing file when ``force`` is False."""
    text = "" if name is None else os.fspath(name)
    if not text.strip():
        raise UsageError(f"{option} needs a file name, not an empty one",
                         hint=f"e.g. {option} out.json")
    if "\0" in text:
        raise UsageError(f"{option}: a file name cannot hold a NUL character")
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(os.sep):
        raise UsageError(f"{option} {text}: it is a folder", hint="Give a file name in it.")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {text}: the folder {path.parent} does not exist",
                         hint="Give a path in an existing folder.")
    if _is_own(path):
        raise OverwriteRefused(
            f"{option} {text}: that is qwenchat's own data (its store or cache); it is never "
            "written over",
            hint="Choose a file outside qwenchat's data folder.",
        )
    if path.exists() and not force:
        question = ask or _ask_on_terminal
        if not question(f"{path} exists; replace it?"):
            raise OverwriteRefused(f"{option} {text}: the file exists; it was left as it is",
                                   hint="Add --force to replace it, or choose another name.")
    return path


def write_atomic(
    path: Path,
    text: str,
    *,
    newline: str | None = None,
    failure: type[QwenchatError] = OverwriteRefused,
    verb: str = "write",
    hint: str = "Check the folder is writable and has room.",
) -> None:
    """Write ``text`` to ``path`` whole or not at all (temporary file, fsync, rename); an
    OSError is one ``failure`` line: "cannot {verb} {path}: {why}"."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise failure(f"cannot {verb} {path}: {exc.strerror or exc}", hint=hint) from None
