"""The seam between qwenchat and the network: an HTTP fetcher and an AI Hub client.

Everything that crosses the wire goes through these two small protocols. The public model
store is read with ``requests``; ``QWENCHAT_HUB_STORE=URL`` sends those requests to a copy
of the store instead (a mirror or proxy cache -- and the tests' recorded store on
127.0.0.1), so the real HTTP code runs in tests too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qwenchat.errors import HubError
from qwenchat.hub import INSTALL_HINT

STORE_ENV = "QWENCHAT_HUB_STORE"


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
        self, url: str, *, start: int = 0, headers: dict[str, str] | None = None  # protocol
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

    # Up to 64 KiB per read: the progress display gets a steady beat.
    CHUNK = 64 * 1024

    def __init__(self, timeout: float = 60.0, mirror: str | None = None) -> None:
        import os

        self._requests = _require("requests")
        self._timeout = timeout
        self._mirror = (mirror or os.environ.get(STORE_ENV) or "").rstrip("/") or None
        if self._mirror is not None and not self._mirror.startswith(("http://", "https://")):
            from qwenchat.errors import UsageError

            raise UsageError(
                f"{STORE_ENV} is not an http(s) URL: {self._mirror!r}",
                f"Set {STORE_ENV} to the base URL of a copy of AI Hub's store, or unset it.",
            )

    def _where(self, url: str) -> str:
        """The URL to ask: AI Hub's store URLs go to the mirror when one is set."""
        if self._mirror is None:
            return url
        from qwenchat.hub.index import store_url

        store = store_url()
        return self._mirror + url[len(store) :] if url.startswith(store) else url

    def _call(self, method: str, url: str, headers: dict[str, str], stream: bool):  # noqa: ANN202
        exc = self._requests.exceptions
        try:
            return self._requests.request(
                method,
                self._where(url),
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
        # Byte-exact: no gzip from a proxy, so sizes, Range offsets and hashes mean the file.
        h = {"Accept-Encoding": "identity", **(headers or {})}
        if start:
            h["Range"] = f"bytes={start}-"
        r = self._call("GET", url, h, stream=True)
        exc = self._requests.exceptions

        def chunks() -> Iterator[bytes]:
            import urllib3

            # read1 hands over whatever has arrived, so a dropped link loses no received
            # byte (iter_content's read(n) discards a short last read) and resume starts
            # exactly where the bytes stopped.
            read1 = getattr(r.raw, "read1", None)
            try:
                if read1 is None:  # urllib3 < 2.1
                    yield from r.iter_content(self.CHUNK)
                    return
                while chunk := read1(self.CHUNK):
                    yield chunk
            except (
                exc.ConnectionError,
                exc.Timeout,
                exc.ChunkedEncodingError,
                exc.ContentDecodingError,
                urllib3.exceptions.HTTPError,
            ) as e:
                # The link dropped mid-body (urllib3's IncompleteRead, a reset) or stalled past
                # the timeout: resumable. No bare OSError gets here: urllib3 wraps a socket's
                # (reset -> ProtocolError, timeout -> ReadTimeoutError), requests wraps those.
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

    def target_model_tool_versions(self, job_id: str) -> dict[str, str]:
        """What AI Hub records of how the job's target model was built, by our names:
        ``qairt`` (the QAIRT/QNN SDK it was compiled with), ``soc_model``,
        ``hexagon_version``; only the keys AI Hub has."""
        ...
