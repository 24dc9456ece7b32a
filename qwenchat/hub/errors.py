"""HTTP statuses from AI Hub's servers, each turned into one clear HubError."""

from __future__ import annotations

from qwenchat.errors import HubError
from qwenchat.hub.transport import HttpResponse

NETWORK_HINT = "Check the network connection (and any proxy), then try again."


def network_error(what: str, exc: BaseException) -> HubError:
    return HubError(
        f"cannot reach Qualcomm AI Hub while {what} ({type(exc).__name__})", NETWORK_HINT
    )


def check_status(response: HttpResponse, what: str) -> None:
    """Raise for anything but 200/206 (a redirect was already followed by the fetcher)."""
    status = response.status
    if status in (200, 206):
        return
    if status == 401:
        raise HubError(
            f"AI Hub refused the request for {what} (401 unauthorized)",
            "The public model store needs no token; check any proxy in between.",
        )
    if status in (403, 404):
        # A public S3 bucket answers 403, not 404, for a key that does not exist.
        raise HubError(
            f"AI Hub's store has no {what} (HTTP {status})",
            "The release may have been withdrawn; upgrade qai-hub-models-cli.",
        )
    if status == 429 or (
        status == 503 and "slowdown" in (response.header("x-amz-error-code") or "").lower()
    ):
        after = response.header("retry-after")
        wait = f"; retry after {after} s" if after and after.strip().isdigit() else ""
        raise HubError(
            f"AI Hub rate limit reached while reading {what} (HTTP {status}{wait})",
            "Wait a little and run the command again; the download resumes.",
        )
    if status >= 500:
        raise HubError(
            f"AI Hub's store failed while reading {what} (HTTP {status})",
            "Try again later; the download resumes where it stopped.",
        )
    raise HubError(f"unexpected HTTP {status} from AI Hub while reading {what}")
