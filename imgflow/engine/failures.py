"""Failure kinds: what went wrong with an image, as data.

Every failure record carries one (`ResultRecord.failure_kind`, ``"failureKind"`` in JSON),
set where the failure happens. The message keeps the original's wording for people; programs
group and decide by the kind, never by the message's text.
"""

from __future__ import annotations

from enum import StrEnum

from imgflow.engine import messages


class FailureKind(StrEnum):
    """Why an image failed (one value per message class in `engine/messages.py`, and
    `TLS_FAILED`, whose messages are connection errors)."""

    NOT_FOUND = "not-found"
    HTTP_ERROR = "http-error"
    TIMED_OUT = "timed-out"
    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_RESET = "connection-reset"
    CONNECTION_ERROR = "connection-error"
    DNS_FAILED = "dns-failed"
    INCOMPLETE = "incomplete-body"
    TOO_LARGE = "too-large"
    NOT_AN_IMAGE = "not-an-image"
    TOO_MANY_REDIRECTS = "too-many-redirects"
    BAD_REDIRECT = "bad-redirect"
    REFUSED_TARGET = "refused-target"
    BATCH_FAILED = "batch-failed"
    STORE_FAILED = "store-failed"
    NO_SPACE = "no-space"
    BAD_RESPONSE = "bad-response"
    EMPTY_BODY = "empty-body"
    PROXY_REFUSED = "proxy-refused"
    PROXY_UNREACHABLE = "proxy-unreachable"
    CERTIFICATE_REJECTED = "certificate-rejected"
    TLS_FAILED = "tls-failed"  # a TLS failure other than the certificate ("Connection error")
    THROTTLED = "throttled"
    HOST_PAUSED = "host-paused"  # its host failed to connect too often in a row
    INVALID_URL = "invalid-url"  # a table's row whose URL cannot be fetched (never sent)
    OTHER = "other"

    @property
    def label(self) -> str:
        """The message class people read for this kind (``Could not find``)."""
        return _LABELS.get(self, "Other")


_LABELS: dict[FailureKind, str] = {
    FailureKind.NOT_FOUND: messages.NOT_FOUND,
    FailureKind.HTTP_ERROR: messages.HTTP_ERROR,
    FailureKind.TIMED_OUT: messages.TIMED_OUT,
    FailureKind.CONNECTION_REFUSED: messages.CONNECTION_REFUSED,
    FailureKind.CONNECTION_RESET: messages.CONNECTION_RESET,
    FailureKind.CONNECTION_ERROR: messages.CONNECTION_ERROR,
    FailureKind.DNS_FAILED: messages.DNS_FAILED,
    FailureKind.INCOMPLETE: messages.INCOMPLETE,
    FailureKind.TOO_LARGE: messages.TOO_LARGE,
    FailureKind.NOT_AN_IMAGE: messages.NOT_AN_IMAGE,
    FailureKind.TOO_MANY_REDIRECTS: messages.TOO_MANY_REDIRECTS,
    FailureKind.BAD_REDIRECT: messages.BAD_REDIRECT,
    FailureKind.REFUSED_TARGET: messages.REFUSED_TARGET,
    FailureKind.BATCH_FAILED: messages.BATCH_FAILED,
    FailureKind.STORE_FAILED: messages.STORE_FAILED,
    FailureKind.NO_SPACE: messages.NO_SPACE,
    FailureKind.BAD_RESPONSE: messages.BAD_RESPONSE,
    FailureKind.EMPTY_BODY: messages.EMPTY_BODY,
    FailureKind.PROXY_REFUSED: messages.PROXY_REFUSED,
    FailureKind.PROXY_UNREACHABLE: messages.PROXY_UNREACHABLE,
    FailureKind.CERTIFICATE_REJECTED: messages.CERTIFICATE_REJECTED,
    FailureKind.TLS_FAILED: messages.CONNECTION_ERROR,
    FailureKind.THROTTLED: messages.THROTTLED,
    FailureKind.HOST_PAUSED: messages.HOST_PAUSED,
}
# A class's own kind (TLS_FAILED shares "Connection error" with CONNECTION_ERROR).
_BY_LABEL = {label: kind for kind, label in _LABELS.items() if kind is not FailureKind.TLS_FAILED}

_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")
# Classes whose old messages were grouped by their words, not by their class.
_BY_WORDS = (FailureKind.EMPTY_BODY, FailureKind.BATCH_FAILED)


def kind_of_legacy_message(message: str) -> FailureKind:
    """The kind of a failure recorded before kinds were: only for reading old index rows and
    result files that carry no kind.

    Mostly its message's class; the words the report once grouped old messages by decide
    the rest: a Retry-After over the limit is throttled, a connection error naming TLS is
    a TLS failure, a full disk is no space.
    """
    kind = _BY_LABEL.get(messages.failure_class(message))
    if kind is FailureKind.NOT_FOUND:
        return kind
    if "Retry-After" in message:
        return FailureKind.THROTTLED
    lowered = message.lower()
    tls = any(word in lowered for word in _TLS_WORDS)
    if tls and kind in (FailureKind.CONNECTION_ERROR, FailureKind.CONNECTION_RESET):
        return FailureKind.TLS_FAILED
    if kind is not None and kind not in _BY_WORDS:
        return kind
    if tls:
        return FailureKind.TLS_FAILED
    if "no space left" in lowered:
        return FailureKind.NO_SPACE
    return kind or FailureKind.OTHER
