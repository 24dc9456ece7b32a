"""Everything of the host the phone can see: this list, read-only, and nothing else.

The phone's root is an empty tmpfs (read-only once set up) holding its own trees (/system,
/vendor from ``rootfs``, /data from ``storage``). From the host it borrows, read-only and
each at the path the loader or Python expects:

- the programs the phone runs: Debian's mksh (``/system/bin/sh``), toybox and busybox
  (static: the commands Android's toybox has and Debian's build lacks);
- the dynamic loader and the shared libraries those programs and Python need (found with
  ``ldd``, files only, never a whole library directory; for Python, only what its
  interpreter and the compiled modules in ``SIM_EXTENSIONS`` load);
- the Python runtime the phone's init and the simulated genie-t2t-run run on: the
  interpreter binary and its standard library (its own site-packages masked by an empty
  tmpfs), and two packages under ``SIM_PYTHONPATH``: qwenchat (the code of the init and of
  the simulation; of it only ``qwenchat/emulator`` and the package's ``__init__.py``) and
  regex (the ``\\p{L}``/``\\p{N}`` classes of Qwen's pre-tokenizer pattern, for the
  simulation's own BPE in ``genie_sim.tokenizer``). Hugging Face ``tokenizers`` is
  deliberately not lent: a phone counting tokens with the library qwenchat's host side
  counts with could never show a tokenizer bug as a disagreement.

Nothing here is writable from the phone: bwrap binds each entry read-only, the phone's
processes have no capability to remount, and the tree around them is a read-only tmpfs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator import PhoneStartError

SIM_PYTHONPATH = "/apex/qwenchat.sim/python"
TOOLS = {"mksh": "/system/bin/sh", "toybox": "/system/bin/toybox", "busybox": "/system/bin/busybox"}
APT_PACKAGES = {"mksh": "mksh", "toybox": "toybox", "busybox": "busybox-static",
                "bwrap": "bubblewrap"}  # fmt: skip


# The standard library's compiled modules the phone's init and the simulation import (found
# with `python -v` on a run): only their shared libraries are lent, so the others (tkinter's
# X11, readline's ncurses, sqlite...) cannot load on the phone.
SIM_EXTENSIONS = frozenset(
    "_bisect _blake2 _bz2 _ctypes _datetime _hashlib _heapq _json _lzma _opcode _posixsubprocess "
    "_random _sha512 _socket _struct _typing array binascii fcntl math select termios "
    "unicodedata zlib".split()
)


class MissingTool(PhoneStartError):
    """A host program the phone needs is not installed (the message names the apt package)."""


@dataclass(frozen=True)
class Lent:
    source: Path  # on the host
    dest: str  # in the phone


@dataclass(frozen=True)
class Lending:
    files: tuple[Lent, ...]  # bound read-only, files and directories
    masked: tuple[str, ...]  # directories of the lent tree hidden by an empty tmpfs
    python: str  # the interpreter, as the phone sees it
    loader: str


def tool_path(name: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise MissingTool(
            f"{name} is not installed (apt-get install {APT_PACKAGES.get(name, name)}; "
            "`make phone-tools` installs all the emulated phone needs)"
        )
    return Path(found).resolve()


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingTool(f"the Python package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _ldd(files: list[Path]) -> tuple[str, list[str]]:
    """(loader, libraries) that ``files`` load, as absolute paths."""
    out = subprocess.run(
        ["ldd", *map(str, files)], capture_output=True, text=True, check=False
    ).stdout
    libs: set[str] = set()
    loader = ""
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target.startswith("/"):
                libs.add(target)
        elif line.startswith("/") and "ld-linux" in line:
            loader = line.split("(")[0].strip()
    return loader, sorted(libs)


@functools.lru_cache(maxsize=1)
def lending() -> Lending:
    """What this host lends every emulated phone (computed once per process)."""
    tools = {name: tool_path(name) for name in TOOLS}
    python = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    dynload = stdlib / "lib-dynload"
    extensions = sorted(
        so
        for so in (dynload.glob("*.so") if dynload.is_dir() else [])
        if so.name.split(".")[0] in SIM_EXTENSIONS
    )
    qwenchat = _package_dir("qwenchat")
    regex = _package_dir("regex")
    native = [*tools.values(), python, *extensions, *regex.glob("*.so")]
    loader, libs = _ldd(native)
    if not loader:
        raise MissingTool("cannot find the dynamic loader of mksh (is ldd installed?)")
    files = [Lent(tools[name], dest) for name, dest in TOOLS.items()]
    files.append(Lent(Path(loader).resolve(), loader))
    files += [Lent(Path(lib).resolve(), lib) for lib in libs]
    files += [
        Lent(python, str(python)),
        Lent(stdlib, str(stdlib)),
        # Of qwenchat, only the emulator's own code (the init and the simulated genie).
        Lent(qwenchat / "__init__.py", f"{SIM_PYTHONPATH}/qwenchat/__init__.py"),
        Lent(qwenchat / "emulator", f"{SIM_PYTHONPATH}/qwenchat/emulator"),
        Lent(regex, f"{SIM_PYTHONPATH}/regex"),
    ]
    masked = tuple(
        str(p) for p in (stdlib / "site-packages", stdlib / "dist-packages") if p.is_dir()
    )
    return Lending(files=tuple(files), masked=masked, python=str(python), loader=loader)


def python_command(script: str) -> list[str]:
    """The phone's Python running ``script`` (a path in the phone) without site or env."""
    return [lending().python, "-S", "-E", "-s", "-B", script]
