"""What one attempt's answer means: an image, a confirmation, a retry or a failure.

A failure is decided where it happens, with its kind (`FailureKind`) next to its message
(`imgflow.engine.messages`): a status code, a redirect, the store's error, or a transport's
exception, which `transport_failure` maps by its type.
"""

from __future__ import annotations

import email.utils
import errno
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from imgflow.engine import messages
from imgflow.engine.body import MemorySink, Sink
from imgflow.engine.failures import FailureKind
from imgflow.engine.guard import TargetRefused
from imgflow.engine.ports import NO_VALIDATORS, Validators
from imgflow.engine.proxy import Proxy
from imgflow.engine.tls import certificate_problem
from imgflow.engine.transport import BadResponse, ConnectionClosed, IncompleteBody

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete image body in its sink, checked and ready to commit."""

    body: Sink
    status_code: int
    content_type: str | None
    attempts: int
    validators: Validators = NO_VALIDATORS
    size: tuple[int, int] | None = None  # (width, height) from the image's header

    @property
    def data(self) -> bytes:
        """The body's bytes, when it was fetched into memory (no sink given)."""
        if not isinstance(self.body, MemorySink):
            raise TypeError("the body went to a store, not to memory")
        return self.body.data


@dataclass(frozen=True, slots=True)
class NotModified:
    """The server confirmed the version named by the request's validators (304).

    `validators` are the 304's own where it sent them, else the ones the request carried.
    """

    validators: Validators
    attempts: int
    status_code: int = 304


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """Why an image could not be fetched (or stored): its kind and its message."""

    kind: FailureKind
    message: str
    status_code: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Excluded:
    """The site asked not to have this image fetched or kept (robots.txt, an opt-out
    header): not a failure, never retried. `message` names the reason and the URL."""

    message: str
    attempts: int
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt that may succeed later, after `delay` seconds (None: back off).

    `host` is the host that failed when that is a redirect's target: what the failure
    says about load is that host's, not the one that redirected."""

    kind: FailureKind
    message: str
    status_code: int | None
    delay: float | None = None
    host: str | None = None


Attempt = Fetched | NotModified | FetchFailure | Excluded | Retry
Result = Fetched | NotModified | FetchFailure | Excluded


def failed(
    kind: FailureKind, url: str, detail: str | None, status: int | None, attempts: int
) -> FetchFailure:
    """A failure whose message is ``<kind's class>: <url> (<detail>)``."""
    return FetchFailure(kind, messages.failure(kind.label, url, detail), status, attempts)


def retry(kind: FailureKind, url: str, detail: str | None = None) -> Retry:
    """A retry whose message is ``<kind's class>: <url> (<detail>)``."""
    return Retry(kind, messages.failure(kind.label, url, detail), None)


def store_failure(url: str, exc: BaseException, status: int | None, attempts: int) -> FetchFailure:
    """``No space left: <url>`` when the disk is full, else ``Store failed: <url> (detail)``."""
    if no_space(exc):
        return failed(FailureKind.NO_SPACE, url, None, status, attempts)
    return failed(FailureKind.STORE_FAILED, url, str(exc), status, attempts)


def no_space(exc: BaseException) -> bool:
    """Whether `exc` (or the error it was raised from) says the disk is full."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.ENOSPC


def redirect_target(
    url: str, current: str, response: httpx.Response, attempts: int
) -> FetchFailure | str:
    """The absolute URL a redirect points to, or why it cannot be followed."""
    location = response.headers.get("location")
    if not location:
        detail = f"{response.status_code} without a Location header"
        return failed(FailureKind.BAD_REDIRECT, url, detail, response.status_code, attempts)
    target: str = urljoin(current, location)
    if urlsplit(target).scheme not in ("http", "https"):
        detail = f"to {target!r}"
        return failed(FailureKind.BAD_REDIRECT, url, detail, response.status_code, attempts)
    return target


def status_failure(
    url: str, response: httpx.Response, attempts: int, retry_after_max: float
) -> FetchFailure | Retry:
    """What a status other than 200, 304 and a redirect means."""
    status = response.status_code
    if status in (404, 410):
        return FetchFailure(FailureKind.NOT_FOUND, messages.not_found(url), status, attempts)
    message = messages.http_error(status, url, response.reason_phrase or None)
    if status not in RETRY_STATUSES:
        return FetchFailure(FailureKind.HTTP_ERROR, message, status, attempts)
    wait = retry_after(response.headers.get("retry-after"))
    if wait is not None and wait > retry_after_max:
        detail = f"{message} (Retry-After {wait:.0f}s is over the {retry_after_max:g}s limit)"
        return FetchFailure(FailureKind.THROTTLED, detail, status, attempts)
    return Retry(FailureKind.HTTP_ERROR, message, status, wait)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


_TIMEOUTS = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}


def transport_failure(
    url: str,
    exc: httpx.HTTPError,
    attempts: int,
    current: str | None = None,
    proxy: Proxy | None = None,
) -> FetchFailure | Retry:
    """What a transport's exception means, by its type and its root cause's; most are
    worth another attempt.

    `current` is the URL requested: a redirect's target is named in the message
    (``Connection refused: <url> (redirected to <target>)``) and a retry carries its host.
    `proxy` is the proxy it went through. A rejected certificate, a malformed response and
    a proxy's refusal are permanent.
    """
    target = current if current is not None and current != url else None
    result = _transport_failure(url, exc, attempts, current, proxy, target)
    if target is not None and isinstance(result, Retry):
        host = urlsplit(target).netloc.lower()
        return Retry(result.kind, result.message, result.status_code, result.delay, host)
    return result


def _at(target: str | None, detail: str | None = None) -> str | None:
    """A failure's detail, with the redirect's target it happened at (if any) named first."""
    if target is None:
        return detail
    return f"redirected to {target}" + (f": {detail}" if detail else "")


def _transport_failure(
    url: str,
    exc: httpx.HTTPError,
    attempts: int,
    current: str | None,
    proxy: Proxy | None,
    target: str | None,
) -> FetchFailure | Retry:
    cause = _root_cause(exc)
    if isinstance(cause, TargetRefused):
        return failed(FailureKind.REFUSED_TARGET, url, _at(target, str(cause)), None, attempts)
    problem = certificate_problem(cause)
    if problem is not None:  # the message names the host whose certificate failed
        host = urlsplit(current or url).hostname or "?"
        message = messages.certificate_rejected(host, problem, url)
        return FetchFailure(FailureKind.CERTIFICATE_REJECTED, message, None, attempts)
    if isinstance(exc, httpx.ProxyError) and proxy is not None:
        detail = f"{proxy.shown} answered {exc}"
        return failed(FailureKind.PROXY_REFUSED, url, _at(target, detail), None, attempts)
    if proxy is not None and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        reason = str(cause) if isinstance(cause, OSError) else str(exc)
        detail = f"{proxy.shown}: {reason or type(cause).__name__}"
        return retry(FailureKind.PROXY_UNREACHABLE, url, _at(target, detail))
    if isinstance(exc, BadResponse) or type(exc) is httpx.RemoteProtocolError:
        return failed(FailureKind.BAD_RESPONSE, url, _at(target, str(exc)), None, attempts)
    if isinstance(exc, httpx.TimeoutException):
        timeout = _TIMEOUTS.get(type(exc), "request")
        return retry(FailureKind.TIMED_OUT, url, _at(target, f"{timeout} timeout"))
    if isinstance(cause, socket.gaierror):
        detail = str(cause.strerror or cause)
        if cause.errno == socket.EAI_AGAIN:
            return retry(FailureKind.DNS_FAILED, url, _at(target, detail))
        return failed(FailureKind.DNS_FAILED, url, _at(target, detail), None, attempts)
    if isinstance(cause, ConnectionRefusedError) or _errno(cause) == errno.ECONNREFUSED:
        return retry(FailureKind.CONNECTION_REFUSED, url, _at(target))
    if isinstance(exc, IncompleteBody):
        return retry(FailureKind.INCOMPLETE, url, _at(target, str(exc)))
    if isinstance(exc, ConnectionClosed):
        return retry(FailureKind.CONNECTION_RESET, url, _at(target, str(exc)))
    if isinstance(cause, ConnectionResetError) or isinstance(exc, httpx.ReadError):
        return retry(FailureKind.CONNECTION_RESET, url, _at(target))
    if isinstance(exc, httpx.TransportError):
        message = messages.failure(messages.CONNECTION_ERROR, url, _at(target, str(exc) or None))
        tls = isinstance(cause, ssl.SSLError)  # a TLS failure other than the certificate
        return Retry(FailureKind.TLS_FAILED if tls else FailureKind.CONNECTION_ERROR, message, None)
    detail = str(exc) or type(exc).__name__
    return failed(FailureKind.CONNECTION_ERROR, url, _at(target, detail), None, attempts)


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        assert nxt is not None
        seen = nxt
    return seen


def _errno(exc: BaseException) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None
