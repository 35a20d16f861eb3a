"""Failure messages, in the original pipeline's style (``Could not find: <url>``).

Every message starts with its class, then ``: <url>``, so a failures file can be read by
people and grouped by programs (see `failure_class`).
"""

from __future__ import annotations

from http import HTTPStatus

NOT_FOUND = "Could not find"
HTTP_ERROR = "HTTP error"
TIMED_OUT = "Timed out"
CONNECTION_REFUSED = "Connection refused"
CONNECTION_RESET = "Connection reset"
CONNECTION_ERROR = "Connection error"
DNS_FAILED = "DNS lookup failed"
INCOMPLETE = "Incomplete body"
TOO_LARGE = "Too large"
NOT_AN_IMAGE = "Not an image"
TOO_MANY_REDIRECTS = "Too many redirects"
BAD_REDIRECT = "Bad redirect"
REFUSED_TARGET = "Refused target"
BATCH_FAILED = "Batch failed"
STORE_FAILED = "Store failed"
NO_SPACE = "No space left"
BAD_RESPONSE = "Bad response"
EMPTY_BODY = "Empty body"
PROXY_REFUSED = "Proxy refused"
PROXY_UNREACHABLE = "Proxy unreachable"
CERTIFICATE_REJECTED = "Certificate rejected"
THROTTLED = "Throttled"
HOST_PAUSED = "Host paused"

CLASSES = (
    NOT_FOUND,
    HTTP_ERROR,
    TIMED_OUT,
    CONNECTION_REFUSED,
    CONNECTION_RESET,
    CONNECTION_ERROR,
    DNS_FAILED,
    INCOMPLETE,
    TOO_LARGE,
    NOT_AN_IMAGE,
    TOO_MANY_REDIRECTS,
    BAD_REDIRECT,
    REFUSED_TARGET,
    BATCH_FAILED,
    STORE_FAILED,
    NO_SPACE,
    BAD_RESPONSE,
    EMPTY_BODY,
    PROXY_REFUSED,
    PROXY_UNREACHABLE,
    CERTIFICATE_REJECTED,
    THROTTLED,
    HOST_PAUSED,
)


def not_found(url: str) -> str:
    """The original's message for a 404."""
    return f"{NOT_FOUND}: {url}"


def http_error(code: int, url: str, reason: str | None = None) -> str:
    """``HTTP error <code> - <reason>: <url>``."""
    if not reason:
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = "Unknown"
    return f"{HTTP_ERROR} {code} - {reason}: {url}"


def failure(kind: str, url: str, detail: str | None = None) -> str:
    """``<kind>: <url>`` with an optional ``(detail)``."""
    return f"{kind}: {url}" + (f" ({detail})" if detail else "")


def throttled(url: str, status: int, seconds: float, attempts: int) -> str:
    """``Throttled: <url> (429 for 94 s, 12 attempts)``: the host kept refusing."""
    return f"{THROTTLED}: {url} ({status} for {seconds:.0f} s, {attempts} attempts)"


def certificate_rejected(host: str, reason: str, url: str) -> str:
    """``Certificate rejected for <host>: <reason> (<url>)``: the host whose certificate
    failed, which after a redirect is not the URL's own."""
    return f"{CERTIFICATE_REJECTED} for {host}: {reason} ({url})"


def failure_class(message: str) -> str:
    """The class a failure message starts with (its text up to the first colon)."""
    for kind in CLASSES:
        if message.startswith(kind):
            return kind
    return message.split(":", 1)[0]
