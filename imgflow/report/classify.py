"""Failure classes a person recognises: not found, HTTP 5xx, throttled, timeouts, TLS ...

A failure record's class comes from its kind (`FailureKind`, set where it failed) and its
HTTP status; a record from an older imgflow, without a kind, is read by its message
(`kind_of_legacy_message`), so records of either backend and age group the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgflow.engine.failures import FailureKind, kind_of_legacy_message


@dataclass(frozen=True)
class FailureClass:
    """One group of the report's failure section."""

    slug: str
    title: str
    hint: str


NOT_FOUND = FailureClass("not-found", "Not found", "The server has no such file (404 or 410).")
THROTTLED = FailureClass(
    "throttled",
    "Throttled",
    "The server asked imgflow to slow down (429, or a Retry-After longer than allowed).",
)
HTTP_5XX = FailureClass("http-5xx", "HTTP 5xx", "The server failed to answer (a 5xx status).")
HTTP_4XX = FailureClass("http-4xx", "HTTP 4xx", "The server refused the request (a 4xx status).")
HTTP_OTHER = FailureClass("http-other", "Other HTTP status", "An unexpected HTTP status.")
TIMEOUT = FailureClass("timeout", "Timed out", "No answer within the configured timeouts.")
TLS = FailureClass("tls", "TLS", "The secure connection failed (certificate or handshake).")
DNS = FailureClass("dns", "DNS", "The host name could not be resolved.")
CONNECTION = FailureClass(
    "connection", "Connection", "The connection was refused, reset or cut short."
)
TOO_LARGE = FailureClass("too-large", "Too large", "The body was over the size limit.")
NOT_AN_IMAGE = FailureClass(
    "not-an-image", "Not an image", "The body was not an allowed image type."
)
REDIRECT = FailureClass("redirect", "Redirects", "Too many or unusable redirects.")
PROXY = FailureClass("proxy", "Proxy", "The proxy refused the request or did not answer.")
BAD_RESPONSE = FailureClass(
    "bad-response", "Bad response", "The server's answer was not valid HTTP/1.1 framing."
)
REFUSED = FailureClass(
    "refused-target", "Refused target", "The address is one imgflow never fetches."
)
STORAGE = FailureClass("storage", "Storage", "The image was fetched but could not be stored.")
OTHER = FailureClass("other", "Other", "Any other failure.")

ALL = (
    NOT_FOUND,
    THROTTLED,
    HTTP_5XX,
    HTTP_4XX,
    HTTP_OTHER,
    TIMEOUT,
    TLS,
    DNS,
    CONNECTION,
    PROXY,
    BAD_RESPONSE,
    TOO_LARGE,
    NOT_AN_IMAGE,
    REDIRECT,
    REFUSED,
    STORAGE,
    OTHER,
)

_BY_KIND = {
    FailureKind.NOT_FOUND: NOT_FOUND,
    FailureKind.TIMED_OUT: TIMEOUT,
    FailureKind.DNS_FAILED: DNS,
    FailureKind.CONNECTION_REFUSED: CONNECTION,
    FailureKind.CONNECTION_RESET: CONNECTION,
    FailureKind.CONNECTION_ERROR: CONNECTION,
    FailureKind.HOST_PAUSED: CONNECTION,
    FailureKind.INCOMPLETE: CONNECTION,
    FailureKind.TOO_LARGE: TOO_LARGE,
    FailureKind.NOT_AN_IMAGE: NOT_AN_IMAGE,
    FailureKind.TOO_MANY_REDIRECTS: REDIRECT,
    FailureKind.BAD_REDIRECT: REDIRECT,
    FailureKind.REFUSED_TARGET: REFUSED,
    FailureKind.STORE_FAILED: STORAGE,
    FailureKind.NO_SPACE: STORAGE,
    FailureKind.CERTIFICATE_REJECTED: TLS,
    FailureKind.TLS_FAILED: TLS,
    FailureKind.PROXY_REFUSED: PROXY,
    FailureKind.PROXY_UNREACHABLE: PROXY,
    FailureKind.BAD_RESPONSE: BAD_RESPONSE,
}


def classify(kind: FailureKind | None, message: str | None, status: int | None) -> FailureClass:
    """The class of one failure, from its kind (else its message) and HTTP status."""
    if kind is None:
        kind = kind_of_legacy_message(message or "")
    if status in (404, 410) or kind is FailureKind.NOT_FOUND:
        return NOT_FOUND
    if status == 429 or kind is FailureKind.THROTTLED:
        return THROTTLED
    if kind is FailureKind.HTTP_ERROR or (status is not None and status >= 400):
        if status is not None and 500 <= status < 600:
            return HTTP_5XX
        if status is not None and 400 <= status < 500:
            return HTTP_4XX
        return HTTP_OTHER
    return _BY_KIND.get(kind, OTHER)
