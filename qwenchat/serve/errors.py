"""Errors a client sees, in OpenAI's JSON shape (``{"error": {message, type, param, code}}``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# OpenAI's error types by HTTP status (what its clients map to exception classes).
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}


@dataclass
class APIError(Exception):
    """One refused or failed request: its status, one line, the field it is about."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "server_error")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, code=code or "invalid_value", param=param)


__all__ = ["APIError", "bad_request"]
