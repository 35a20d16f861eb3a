"""Failure classes a person recognises: not found, HTTP 5xx, throttled, timeouts, TLS ...

A failure record's class comes from its message (which starts with the engine's class,
see `imgflow.engine.messages`) and its HTTP status, so records written by either backend,
or by an older imgflow, group the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgflow.engine import messages


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

_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")
_BY_KIND = {
    messages.NOT_FOUND: NOT_FOUND,
    messages.TIMED_OUT: TIMEOUT,
    messages.DNS_FAILED: DNS,
    messages.CONNECTION_REFUSED: CONNECTION,
    messages.CONNECTION_RESET: CONNECTION,
    messages.CONNECTION_ERROR: CONNECTION,
    messages.INCOMPLETE: CONNECTION,
    messages.TOO_LARGE: TOO_LARGE,
    messages.NOT_AN_IMAGE: NOT_AN_IMAGE,
    messages.TOO_MANY_REDIRECTS: REDIRECT,
    messages.BAD_REDIRECT: REDIRECT,
    messages.REFUSED_TARGET: REFUSED,
    messages.STORE_FAILED: STORAGE,
    messages.NO_SPACE: STORAGE,
    messages.CERTIFICATE_REJECTED: TLS,
    messages.PROXY_REFUSED: PROXY,
    messages.PROXY_UNREACHABLE: PROXY,
    messages.BAD_RESPONSE: BAD_RESPONSE,
}


def classify(message: str | None, status: int | None) -> FailureClass:
    """The class of one failure, from its message and HTTP status."""
    text = message or ""
    kind = messages.failure_class(text)
    if status in (404, 410) or kind == messages.NOT_FOUND:
        return NOT_FOUND
    if status == 429 or kind == messages.THROTTLED or "Retry-After" in text:
        return THROTTLED
    if kind == messages.HTTP_ERROR or (status is not None and status >= 400):
        if status is not None and 500 <= status < 600:
            return HTTP_5XX
        if status is not None and 400 <= status < 500:
            return HTTP_4XX
        return HTTP_OTHER
    lowered = text.lower()
    if kind in (messages.CONNECTION_ERROR, messages.CONNECTION_RESET) and any(
        word in lowered for word in _TLS_WORDS
    ):
        return TLS
    found = _BY_KIND.get(kind)
    if found is not None:
        return found
    if any(word in lowered for word in _TLS_WORDS):
        return TLS
    if "no space left" in lowered:
        return STORAGE
    return OTHER
