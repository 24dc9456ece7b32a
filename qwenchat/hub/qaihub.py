"""The real ``HubClient``: qai_hub with the user's token from its usual config.

The token is read by qai_hub itself (``~/.qai_hub/client.ini`` or ``$QAIHUB_CLIENT_INI``)
and handed straight to its ``Client``; qwenchat never prints, logs or stores it. Every call
into the library runs inside ``Scrubber.guard`` and every exception it raises -- of any
type -- becomes a HubError whose text is scrubbed of the token (``scrub.py``): this is the
one place the token could leak through a server's or a library's words.
"""

from __future__ import annotations

from pathlib import Path

from qwenchat.errors import HubError
from qwenchat.hub.scrub import Scrubber
from qwenchat.hub.transport import HubJob, _require

# How long the first contact may take to show AI Hub can be reached at all: without a
# network, qai_hub's own retries take ~50 s to give up; a reachable server answers a TCP
# connect in well under a second.
REACH_S = 8.0
UNREACHABLE_HINT = "Check the network connection (and any proxy), then try again."

CONFIGURE_HINT = (
    "Get your API token from https://workbench.aihub.qualcomm.com/account/ and run "
    "`qai-hub configure --api_token YOUR_TOKEN` (it writes ~/.qai_hub/client.ini)."
)


class QaiHubClient:
    def __init__(self) -> None:
        self._api_utils = _require("qai_hub.api_utils")
        self._hub_client = _require("qai_hub.client")
        rest = _require("qai_hub.public_rest_api")
        path = self._api_utils.get_config_path(expanduser=True)
        self._scrub = Scrubber()
        try:
            with self._scrub.guard():
                config = self._api_utils.load_default_api_config()
        except FileNotFoundError:
            raise HubError(
                f"no AI Hub API token configured ({path} not found)", CONFIGURE_HINT
            ) from None
        except (rest.APIException, KeyError, ValueError):
            raise HubError(
                f"no AI Hub API token in {path} (the [api] section lacks fields)", CONFIGURE_HINT
            ) from None
        except Exception as e:  # noqa: BLE001
            # configparser quotes the line it cannot parse -- the token's line, often: say
            # what failed without any of the library's text.
            raise HubError(
                f"cannot read the AI Hub config {path} ({type(e).__name__})", CONFIGURE_HINT
            ) from None
        if not config.api_token.strip():
            raise HubError(f"the AI Hub API token in {path} is empty", CONFIGURE_HINT)
        config.verbose = False  # no progress bars or "Loading config" lines from the library
        self._scrub = Scrubber(config.api_token)
        self._api_url = str(getattr(config, "api_url", "") or "")
        self._client = self._hub_client.Client(config=config)

    def _check_reachable(self, what: str) -> None:
        """A TCP connect to AI Hub's API host (or the proxy that reaches it), bounded by
        REACH_S: the same one line as any unreachable case, within seconds."""
        import socket
        import threading
        import urllib.request
        from urllib.parse import urlsplit

        url = urlsplit(self._api_url)
        if not url.hostname:
            return  # qai_hub will say what is wrong with its config
        target = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
        proxy = urllib.request.getproxies().get(url.scheme)
        if proxy and not urllib.request.proxy_bypass(url.hostname):
            p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if p.hostname:
                target = (p.hostname, p.port or 8080)
        outcome: list[bool] = []

        def connect() -> None:  # DNS included: getaddrinfo has no timeout of its own
            try:
                socket.create_connection(target, timeout=REACH_S).close()
                outcome.append(True)
            except OSError:
                outcome.append(False)

        probe = threading.Thread(target=connect, name="qwenchat-hub-reach", daemon=True)
        probe.start()
        probe.join(REACH_S)
        if outcome != [True]:
            raise HubError(f"cannot reach Qualcomm AI Hub while {what}", UNREACHABLE_HINT)

    # qai_hub turns HTTP failures into its own exceptions, with the status often dropped
    # ("raise UserError(...) from None"); classify by type and message.
    def _translate(self, exc: Exception, what: str) -> HubError:
        hc = self._hub_client
        message = " ".join(self._scrub(str(exc)).split())
        lower = message.lower()
        # The HTTP status, when the library kept it (on the exception or the one it replaced).
        status = getattr(exc, "status_code", None) or getattr(exc.__context__, "status_code", None)
        if status == 429 or isinstance(exc, hc.RateLimitedError) or "too many requests" in lower:
            return HubError(
                f"AI Hub rate limit reached while {what}", "Wait a few minutes and try again."
            )
        if status == 401 or "authenticate" in lower or "api token" in lower:
            return HubError(
                f"AI Hub refused the API token (401) while {what}",
                "The token is wrong or expired. " + CONFIGURE_HINT,
            )
        if status == 404 or "could not be found" in lower:
            return HubError(
                f"AI Hub has no job {what.split()[-1]} visible to this account",
                "Check the job ID (it starts with 'j', as in the job's URL /jobs/<ID>).",
            )
        if status == 403 or "permission" in lower or "forbidden" in lower:
            return HubError(
                f"AI Hub denied access (403) while {what}",
                "Use the account that owns the job, or ask its owner to share it.",
            )
        if "could not connect" in lower or "timeout" in lower or "unavailable" in lower:
            return HubError(
                f"cannot reach Qualcomm AI Hub while {what}",
                "Check the network connection (and any proxy), then try again.",
            )
        first = message.split(". ")[0][:200]
        return HubError(f"AI Hub failed while {what}: {first}")

    def _call(self, what: str, func, *args, **kwargs):  # noqa: ANN001, ANN202
        import requests

        try:
            with self._scrub.guard():
                return func(*args, **kwargs)
        except HubError:
            raise
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            raise HubError(
                f"cannot reach Qualcomm AI Hub while {what}",
                "Check the network connection (and any proxy), then try again.",
            ) from None
        except (self._hub_client.Error, _require("qai_hub.public_rest_api").APIException) as e:
            raise self._translate(e, what) from None
        except Exception as e:  # noqa: BLE001 -- anything else the library raises
            # requests quotes a bad header value (the token) in InvalidHeader; no text of an
            # unknown exception leaves this seam unscrubbed, and none keeps its traceback.
            detail = " ".join(self._scrub(str(e)).split())[:200]
            raise HubError(
                f"AI Hub failed while {what}: {type(e).__name__}: {detail}",
                "If the token in ~/.qai_hub/client.ini spans lines or has stray characters, "
                + CONFIGURE_HINT[0].lower()
                + CONFIGURE_HINT[1:],
            ) from None

    def get_job(self, job_id: str) -> HubJob:
        self._check_reachable(f"looking up job {job_id}")
        job = self._call(f"looking up job {job_id}", self._client.get_job, job_id)
        status = self._call(f"reading the status of job {job_id}", job.get_status)
        kind = type(job).__name__.removesuffix("Job").lower() or "job"
        return HubJob(
            job_id=job.job_id,
            kind=kind,
            state=status.code,
            name=getattr(job, "name", "") or "",
            failure_reason=" ".join(self._scrub(status.message or "").split()),
        )

    def download_target_model(self, job_id: str, dest: Path) -> Path:
        job = self._call(f"looking up job {job_id}", self._client.get_job, job_id)
        getter = getattr(job, "get_target_model", None)
        if getter is None:
            raise HubError(
                f"job {job_id} is a {type(job).__name__}, which makes no target model",
                "Pass the ID of a compile or link job.",
            )
        model = self._call(f"reading job {job_id}", getter)
        if model is None:
            raise HubError(f"job {job_id} produced no target model")
        dest.mkdir(parents=True, exist_ok=True)
        out = self._call(
            f"downloading the model of job {job_id}", model.download, str(dest / model.model_id)
        )
        return Path(out)

    def target_model_tool_versions(self, job_id: str) -> dict[str, str]:
        job = self._call(f"looking up job {job_id}", self._client.get_job, job_id)
        getter = getattr(job, "get_target_model", None)
        model = self._call(f"reading job {job_id}", getter) if getter is not None else None
        if model is None:
            return {}
        metadata = self._call(f"reading the model of job {job_id}", lambda: model.metadata)
        keys = self._hub_client.ModelMetadataKey
        # QAIRT_SDK_VERSION on current AI Hub; QNN_SDK_VERSION on models compiled before QAIRT.
        wanted = (
            ("qairt", keys.QAIRT_SDK_VERSION),
            ("qairt", keys.QNN_SDK_VERSION),
            ("soc_model", keys.QNN_CONTEXT_BIN_SOC_MODEL),
            ("hexagon_version", keys.QNN_CONTEXT_BIN_HEXAGON_VERSION),
        )
        found: dict[str, str] = {}
        for name, key in wanted:
            value = str(metadata.get(key) or "").strip()
            if value and name not in found:
                found[name] = self._scrub(value)
        return found
