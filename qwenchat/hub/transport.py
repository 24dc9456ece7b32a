"""The seam between qwenchat and the network: an HTTP fetcher and an AI Hub client.

Everything that crosses the wire goes through these two small protocols, so tests can
serve recorded responses (tests/data/hub/) while the code that parses them -- the
libraries' protobuf indexes, qai_hub's config reading -- runs for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qwenchat.errors import HubError
from qwenchat.hub import INSTALL_HINT


@dataclass
class HttpResponse:
    """A status, lower-cased headers and (for GET) the body as chunks."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()))

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self) -> bytes:
        return b"".join(self.chunks)


class HttpFetcher(Protocol):
    """HEAD and GET (with an optional Range start for resume).

    Network failures raise ``ConnectionError`` (or ``OSError``/``TimeoutError``); HTTP
    error statuses are returned, not raised, so one place turns them into HubErrors.
    """

    def head(self, url: str, headers: dict[str, str] | None = None) -> HttpResponse: ...

    def get(
        self, url: str, *, start: int = 0, headers: dict[str, str] | None = None
    ) -> HttpResponse: ...


def _require(module: str):  # noqa: ANN202
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise HubError(
            f"the AI Hub libraries are not installed ({module} is missing)", INSTALL_HINT
        ) from None


class RequestsFetcher:
    """The real fetcher: ``requests`` with streaming, as qai-hub-models-cli's download does."""

    CHUNK = 1024 * 1024

    def __init__(self, timeout: float = 60.0) -> None:
        self._requests = _require("requests")
        self._timeout = timeout

    def _call(self, method: str, url: str, headers: dict[str, str], stream: bool):  # noqa: ANN202
        exc = self._requests.exceptions
        try:
            return self._requests.request(
                method,
                url,
                headers=headers,
                stream=stream,
                timeout=self._timeout,
                allow_redirects=True,
            )
        except (exc.ConnectionError, exc.Timeout, exc.ChunkedEncodingError) as e:
            raise ConnectionError(type(e).__name__) from None

    def head(self, url: str, headers: dict[str, str] | None = None) -> HttpResponse:
        r = self._call("HEAD", url, dict(headers or {}), stream=False)
        return HttpResponse(r.status_code, {k.lower(): v for k, v in r.headers.items()})

    def get(
        self, url: str, *, start: int = 0, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        h = dict(headers or {})
        if start:
            h["Range"] = f"bytes={start}-"
        r = self._call("GET", url, h, stream=True)
        exc = self._requests.exceptions

        def chunks() -> Iterator[bytes]:
            try:
                yield from r.iter_content(self.CHUNK)
            except (exc.ConnectionError, exc.Timeout, exc.ChunkedEncodingError) as e:
                raise ConnectionError(type(e).__name__) from None
            finally:
                r.close()

        return HttpResponse(r.status_code, {k.lower(): v for k, v in r.headers.items()}, chunks())


# ------------------------------------------------------------------------------ AI Hub jobs


@dataclass(frozen=True)
class HubJob:
    """What qwenchat needs to know of an AI Hub job."""

    job_id: str
    kind: str  # "compile", "link", ...
    state: str  # qai_hub JobStatus.State name: "SUCCESS", "FAILED", "RUNNING", ...
    name: str = ""
    failure_reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("SUCCESS", "FAILED")


class HubClient(Protocol):
    """The few qai_hub calls qwenchat makes."""

    def get_job(self, job_id: str) -> HubJob: ...

    def download_target_model(self, job_id: str, dest: Path) -> Path:
        """Download the job's target model into the folder ``dest``; return the file."""
        ...
