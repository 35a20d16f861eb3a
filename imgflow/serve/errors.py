"""Refusals: every request the service turns down gets a status and a one-line JSON error."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


class Refusal(Exception):
    """A request answered with `status` and ``{"error": message}``.

    `close` asks for the connection to be closed after the answer (the request body may
    still be unread on it).
    """

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.close = close


def error_body(message: str) -> dict[str, str]:
    """The JSON body of every refusal."""
    return {"error": " ".join(message.split())}


def refusal_response(refusal: Refusal) -> JSONResponse:
    """The HTTP answer to a refusal."""
    headers = dict(refusal.headers)
    if refusal.close:
        headers["Connection"] = "close"
    return JSONResponse(error_body(refusal.message), status_code=refusal.status, headers=headers)
