"""Where things live in qwenchat's work dir on the phone.

One place for these names so push-assets, doctor, clean, chat and bench agree::

    <work>/bundle/         genie_config.json, htp_backend_ext_config.json, tokenizer.json, *.bin
    <work>/bin/            genie-t2t-run
    <work>/lib/            libGenie.so, libQnnHtp*.so ... (LD_LIBRARY_PATH)
    <work>/skel/           libQnnHtpV<arch>Skel.so (ADSP_LIBRARY_PATH)
    <work>/manifest.json   what the phone holds: size + SHA-256 per file (written last)
    <work>/states/         Genie dialog states (--save/--restore) for chat sessions
    <work>/tmp/            prompt files and profiles of single runs
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from qwenchat.errors import UsageError

DEFAULT_WORK_DIR = "/data/local/tmp/qwenchat"


@dataclass(frozen=True)
class PhoneLayout:
    work_dir: str = DEFAULT_WORK_DIR

    def __post_init__(self) -> None:
        # Every path below is built from this one: a relative or odd work dir would put
        # files wherever the phone's shell happens to be.
        if not self.work_dir.startswith("/"):

            raise UsageError(
                f"--device-dir must be an absolute path on the phone, not {self.work_dir!r}",
                hint=f"e.g. --device-dir {DEFAULT_WORK_DIR}",
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.work_dir):
            raise UsageError(
                f"--device-dir {self.work_dir!r} holds a control character (a newline?)",
                hint=f"e.g. --device-dir {DEFAULT_WORK_DIR}",
            )
        object.__setattr__(self, "work_dir", posixpath.normpath(self.work_dir))

    def _join(self, *parts: str) -> str:
        return posixpath.join(self.work_dir, *parts)

    @property
    def bundle_dir(self) -> str:
        return self._join("bundle")

    @property
    def bin_dir(self) -> str:
        return self._join("bin")

    @property
    def genie_binary(self) -> str:
        return self._join("bin", "genie-t2t-run")

    @property
    def lib_dir(self) -> str:
        return self._join("lib")

    @property
    def skel_dir(self) -> str:
        return self._join("skel")

    @property
    def manifest_path(self) -> str:
        return self._join("manifest.json")

    @property
    def states_dir(self) -> str:
        return self._join("states")

    @property
    def tmp_dir(self) -> str:
        return self._join("tmp")

    @property
    def config_path(self) -> str:
        return self._join("bundle", "genie_config.json")
