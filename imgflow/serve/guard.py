"""Who may call `imgflow serve`: Host, Origin, bearer token and Content-Type checks.

A pure ASGI middleware, so every route (and every unknown path) is guarded the same way:

- ``Host`` must name the address the service listens on (or a name in
  ``serve.allowed_hosts``): a DNS-rebinding page reaches it under its own name;
- a request with an ``Origin`` not in ``serve.allowed_origins`` is refused: browsers send
  Origin with every cross-site POST and DELETE, so a web page cannot start or cancel jobs;
- ``Authorization: Bearer <serve.token>`` unless authentication is off (``--no-auth``);
  the OpenAPI description needs no token;
- a POST must be ``application/json`` (parameters such as charset=UTF-8 allowed): a
  browser form cannot send that type without a preflight.

Each refusal is ``403``, ``401`` or ``415`` with a one-line JSON error.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from imgflow.serve.errors import Refusal, refusal_response

PUBLIC_PATHS = frozenset({"/openapi.json"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Access:
    """What the guard lets through."""

    port: int
    token: str | None
    hosts: frozenset[str] | None  # None: any Host (listening on every address, no names set)
    origins: frozenset[str]


class Guard:
    """Refuses requests that fail the checks in the module docstring."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                self.check(Headers(scope=scope), scope["method"], scope["path"])
            except Refusal as refusal:
                await refusal_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, headers: Headers, method: str, path: str) -> None:
        """Raise the Refusal this request gets, if any."""
        has_body = method in BODY_METHODS
        self._host(headers.get("host"), has_body)
        origin = headers.get("origin")
        if origin is not None and origin not in self.access.origins:
            raise Refusal(
                403,
                f"requests from origin {origin!r} are not allowed (serve.allowed_origins)",
                close=has_body,
            )
        if self.access.token is not None and path not in PUBLIC_PATHS:
            self._token(headers.get("authorization", ""), has_body)
        if has_body:
            _json_content_type(headers.get("content-type"))

    def _host(self, host: str | None, has_body: bool) -> None:
        if self.access.hosts is None:
            return
        name, port = split_host(host or "")
        if name not in self.access.hosts or (port or 80) != self.access.port:
            raise Refusal(
                403,
                f"Host {host!r} is not a name this service answers to (serve.allowed_hosts)",
                close=has_body,
            )

    def _token(self, authorization: str, has_body: bool) -> None:
        scheme, _, given = authorization.partition(" ")
        token = self.access.token
        assert token is not None
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            problem = "wrong bearer token" if authorization else "no bearer token"
            raise Refusal(
                401,
                f"{problem}: send 'Authorization: Bearer <serve.token>'",
                headers={"WWW-Authenticate": 'Bearer realm="imgflow"'},
                close=has_body,
            )


def split_host(host: str) -> tuple[str, int | None]:
    """``("name", port)`` of a Host header value (``[::1]:8080`` -> ``("::1", 8080)``)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, ""
    if port and not port.isdigit():
        return host, None
    return name.rstrip("."), int(port) if port else None


def _json_content_type(value: str | None) -> None:
    media, *params = (value or "").split(";")
    if media.strip().lower() != "application/json":
        shown = repr(value) if value else "none"
        raise Refusal(415, f"Content-Type must be application/json, got {shown}", close=True)
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise Refusal(415, f"request bodies must be UTF-8, got {value!r}", close=True)
