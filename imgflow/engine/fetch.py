"""Fetch one image over HTTP: retries, redirects, size cap, decoding, content check.

`Fetcher.fetch` never raises for a network, HTTP or store problem: it returns `Fetched`
(the body in its sink, ready to commit), `NotModified` (a conditional request's 304) or
`FetchFailure`, with its kind and a message that follows `imgflow.engine.messages`. What each
answer means is `imgflow.engine.outcome`'s; this module sends, follows redirects, reads
bodies and retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from imgflow.engine import messages
from imgflow.engine.body import MemorySink, Refused, Sink, StoreError, dimensions, read_body
from imgflow.engine.decode import ACCEPT_ENCODING, DecodeError, decoder_for, is_identity
from imgflow.engine.failures import FailureKind
from imgflow.engine.guard import AddressCheck
from imgflow.engine.opt_out import TDM, opted_out, wanted_set
from imgflow.engine.outcome import (
    Attempt,
    Excluded,
    Fetched,
    FetchFailure,
    NotModified,
    Result,
    Retry,
    failed,
    redirect_target,
    retry,
    status_failure,
    store_failure,
    transport_failure,
)
from imgflow.engine.politeness import HostGate, Politeness, Signal
from imgflow.engine.ports import NO_VALIDATORS, Validators
from imgflow.engine.proxy import Proxy, router
from imgflow.engine.request_headers import parse_headers
from imgflow.engine.robots import Robots, RobotsCache, Rules
from imgflow.engine.routed import RoutedTransport
from imgflow.engine.settings import FetchConfig
from imgflow.engine.sniff import media_type, type_allowed
from imgflow.engine.tls import check as check_tls
from imgflow.engine.tls import ssl_context
from imgflow.engine.transport import FastTransport, direct_body
from imgflow.engine.transport.request import get_request
from imgflow.engine.user_agent import default_user_agent

Guard = Callable[[str], Awaitable[None]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def gates(
    settings: FetchConfig,
    ceiling: int,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    gate: Callable[..., HostGate] = HostGate,
    **extra: Any,
) -> Callable[..., HostGate]:
    """How a fetcher makes a host's gate (`gate`, with `extra` arguments) from its settings:
    at most `ceiling` requests in flight to the host."""
    return functools.partial(
        gate,
        ceiling=ceiling,
        rate=settings.rate,
        burst=settings.burst,
        backoff_base=max(settings.backoff_base, 0.05),
        backoff_max=max(settings.backoff_max, 0.1),
        adaptive_rate=settings.adaptive_rate,
        sleep=sleep,
        **extra,
    )


class Fetcher:
    """Fetches images with one shared connection pool; use as an async context manager."""

    def __init__(
        self,
        settings: FetchConfig,
        *,
        max_connections: int,
        guard: Guard | None = None,
        address_check: AddressCheck | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        env: Mapping[str, str] | None = None,
        politeness: Politeness | None = None,
        robots_cache: RobotsCache | None = None,
    ) -> None:
        """`robots_cache` keeps robots.txt answers across runs (engine/robots.py);
        `guard` checks every URL (redirects included) and the proxy of each;
        `address_check` every address connected to (imgflow's transport only). Proxies and
        TLS trust follow `settings` and the environment (`env`, default os.environ);
        a setting that is not usable raises ValueError naming it."""
        self.settings = settings
        self._opt_out = wanted_set(settings.opt_out)
        self._guard = guard
        self._sleep = sleep
        self.politeness = politeness or Politeness(gates(settings, max_connections, sleep))
        self._proxies = router(settings, env)
        self._guarded_proxies: dict[Proxy, str | None] = {}
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        if transport is None:
            check_tls(settings, env)  # cheap; the context itself is made when first needed
            if settings.transport == "imgflow":
                transport = FastTransport(
                    max_connections,
                    ssl_context=lambda: ssl_context(settings, env),  # at the first https
                    address_check=address_check,
                    proxies=self._proxies,
                )
            else:
                tls = ssl_context(settings, env)
                transport = RoutedTransport(max_connections, tls, self._proxies)
        headers = [
            ("User-Agent", settings.user_agent or default_user_agent(settings.contact)),
            ("Accept", "image/*,*/*;q=0.5"),
            ("Accept-Encoding", ACCEPT_ENCODING),
        ]
        extra = parse_headers(settings.headers)
        names = {name.lower() for name, _ in extra}
        headers = [(k, v) for k, v in headers if k.lower() not in names] + extra
        # With imgflow's own transport, requests skip the client's send() layers (auth,
        # redirect and event-hook machinery, logging): about a third of the CPU per image.
        self._fast = transport if isinstance(transport, FastTransport) else None
        self._extensions = {"timeout": timeout.as_dict()}
        self._client = httpx.AsyncClient(
            limits=limits,
            timeout=timeout,
            follow_redirects=False,
            headers=headers,
            transport=transport,
            trust_env=False,
        )
        # robots.txt through this same client (proxies, TLS, guard, the host's gate).
        self.robots = (
            Robots(
                self._send,
                self.politeness,
                timeout=settings.timeout,
                total_timeout=settings.total_timeout,
                max_crawl_delay=settings.max_crawl_delay,
                guard=guard,
                retries=settings.retries,
                backoff=self._backoff,
                cache=robots_cache,
            )
            if settings.robots
            else None
        )

    async def __aenter__(self) -> Fetcher:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.robots is not None:
            self.robots.close()
        await self._client.__aexit__(exc_type, exc, tb)

    async def fetch(
        self,
        url: str,
        open_sink: Callable[[], Sink] = MemorySink,
        validators: Validators = NO_VALIDATORS,
    ) -> Result:
        """Fetch `url` into a sink from `open_sink` (one per attempt that gets a body),
        retrying transient failures with backoff and jitter.

        With `validators` (a stored version's), the request is conditional
        (If-None-Match, If-Modified-Since): a 304 is `NotModified`, a 200 the new version.

        A failed attempt's sink is aborted; the caller commits (or aborts) a Fetched's.
        Each attempt passes the host's politeness gate. Throttling answers (429, 503) are
        retried for up to `throttle_patience` seconds, paced by the gate's shared
        cool-down; other transient failures at most `retries` times.

        Unless robots.txt is off, the URL's origin's robots.txt is read first (once per
        run): a disallowed image is never requested and comes back `Excluded`, as does
        one whose response carries an opt-out header (its body left unread).
        """
        if self.robots is not None:
            rules = self.robots.known(url)
            if rules is None:
                rules = await self.robots.rules(url)
            excluded = self._robots_verdict(url, rules)
            if excluded is not None:
                return excluded
        gate = self.politeness.gate(host_of(url))
        attempts = 0
        retried = 0
        throttles = 0
        signals = 0  # this image's refusals the gate took as signals of their own
        throttled_since: float | None = None
        queued = 0.0  # time spent waiting for the host's slots since the first throttle
        while True:
            attempts += 1
            asked = time.monotonic()
            await gate.acquire()
            if throttled_since is not None:
                queued += time.monotonic() - asked
            signal, wait = Signal.OTHER, None
            try:
                result = await self._attempt(url, attempts, open_sink, validators)
                signal, wait = _signal(result, crowded=gate.in_flight > 1)
                if signal is Signal.THROTTLED and signals >= IMAGE_SIGNALS:
                    # This image's repeats say nothing new: a single path that always
                    # answers 503 must not keep slowing down a host that serves the rest.
                    signal = Signal.OTHER
                if signal is not Signal.OK and isinstance(result, Retry) and result.host:
                    # A redirect's target failed: its host is told, not the one redirecting.
                    self.politeness.gate(result.host).tell(signal, wait)
                    signal, wait = Signal.OTHER, None
            finally:
                signals += gate.release(signal, wait)
            if not isinstance(result, Retry):
                return result
            if result.status_code in THROTTLE_STATUSES:
                throttles += 1
                now = time.monotonic()
                throttled_since = now if throttled_since is None else throttled_since
                # The host's refusals count, not the queue behind other workers' slots.
                waited = now - throttled_since - queued
                ahead = max(gate.cooling, result.delay or 0.0)
                if waited + ahead > self.settings.throttle_patience:
                    message = messages.throttled(url, result.status_code, waited, attempts)
                    return FetchFailure(
                        FailureKind.THROTTLED, message, result.status_code, attempts
                    )
                if throttles > 1:  # the first waits in the host's cool-down (the gate)
                    backoff = max(THROTTLE_BACKOFF_MIN, self._backoff(throttles - 1))
                    await self._sleep(backoff if result.delay is None else result.delay)
                continue
            retried += 1
            if retried > self.settings.retries:
                return FetchFailure(result.kind, result.message, result.status_code, attempts)
            delay = self._backoff(retried) if result.delay is None else result.delay
            await self._sleep(delay)

    def _robots_verdict(self, url: str, rules: Rules) -> Excluded | FetchFailure | None:
        """Why robots.txt keeps `url` from being requested, or None. When it could not be
        read at all (no answer), the image fails as its own request would have (a refused
        connection, a rejected certificate, an unreachable proxy), and is not requested."""
        verdict = rules.excluded(url)
        if isinstance(verdict, FetchFailure) and rules.error is not None:
            proxy = self._proxies.proxy_for_url(url) if self._proxies.active else None
            mapped = transport_failure(url, rules.error, 0, None, proxy)
            message = (
                f"{mapped.message} (met reading robots.txt first; the image was not requested)"
            )
            return FetchFailure(mapped.kind, message, None, 0)
        return verdict

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _attempt(
        self, url: str, attempts: int, open_sink: Callable[[], Sink], validators: Validators
    ) -> Attempt:
        try:
            async with asyncio.timeout(self.settings.total_timeout):
                return await self._follow(url, attempts, open_sink, validators)
        except TimeoutError:
            limit = f"not complete within {self.settings.total_timeout:g}s"
            return retry(FailureKind.TIMED_OUT, url, limit)

    async def _follow(
        self, url: str, attempts: int, open_sink: Callable[[], Sink], validators: Validators
    ) -> Attempt:
        current = url
        away = False  # once a redirect leaves the origin, credentials stay behind for good
        for _ in range(self.settings.max_redirects + 1):
            proxy = self._proxies.proxy_for_url(current) if self._proxies.active else None
            if self._guard is not None:
                try:
                    await self._guard(current)
                except Exception as exc:  # any refusal by the guard fails this image
                    detail = str(exc) if current == url else f"redirected to {current}: {exc}"
                    return failed(FailureKind.REFUSED_TARGET, url, detail, None, attempts)
                refused = await self._guard_proxy(proxy)
                if refused is not None:
                    return failed(FailureKind.REFUSED_TARGET, url, refused, None, attempts)
            try:
                result = await self._get(url, current, attempts, open_sink, proxy, validators, away)
            except httpx.HTTPError as exc:
                return transport_failure(url, exc, attempts, current, proxy)
            except StoreError as exc:
                return store_failure(url, exc, 200, attempts)
            if not isinstance(result, str):
                return result
            away = away or _origin(result) != _origin(url)
            current = result
            if self.robots is not None:  # each hop of a redirect obeys its robots.txt
                rules = await self.robots.rules(current)
                disallowed = rules.excluded(current, f"{url} (redirected to {current})")
                if isinstance(disallowed, Excluded):
                    return Excluded(disallowed.message, attempts)
                if disallowed is not None and rules.error is not None:
                    # No answer from the target's host: as its own request would have
                    # failed (and is retried, and charged to that host), unrequested.
                    target_proxy = (
                        self._proxies.proxy_for_url(current) if self._proxies.active else None
                    )
                    return transport_failure(url, rules.error, attempts, current, target_proxy)
                if disallowed is not None:
                    return dataclasses.replace(disallowed, attempts=attempts)
            host = host_of(current)
            if host != host_of(url):  # its host may be cooling down after a refusal
                await self.politeness.gate(host).cool_down()
        detail = f"more than {self.settings.max_redirects}"
        return failed(FailureKind.TOO_MANY_REDIRECTS, url, detail, None, attempts)

    async def _guard_proxy(self, proxy: Proxy | None) -> str | None:
        """Why the guard refuses `proxy` (checked once per proxy), or None."""
        if proxy is None or self._guard is None:
            return None
        if proxy not in self._guarded_proxies:
            try:
                await self._guard(proxy.shown)
                self._guarded_proxies[proxy] = None
            except Exception as exc:  # the guard refuses the proxy's address
                self._guarded_proxies[proxy] = f"proxy {proxy.shown}: {exc}"
        return self._guarded_proxies[proxy]

    async def _get(
        self,
        url: str,
        current: str,
        attempts: int,
        open_sink: Callable[[], Sink],
        proxy: Proxy | None = None,
        validators: Validators = NO_VALIDATORS,
        away: bool = False,
    ) -> Attempt | str:
        """One request; a str result is the next URL of a redirect (`away`: a redirect
        left the origin of `url`, so the request carries no credentials)."""
        response = await self._send(current, _conditional(validators), away)
        headers = response.headers
        try:
            status = response.status_code
            if status == 407 and proxy is not None:
                detail = f"{proxy.shown} answered 407 {response.reason_phrase}".rstrip()
                return failed(FailureKind.PROXY_REFUSED, url, detail, status, attempts)
            if status in REDIRECT_STATUSES:
                return redirect_target(url, current, response, attempts)
            if status == 304 and validators:
                return NotModified(_validators(response, validators), attempts)
            if status != 200:
                return status_failure(url, response, attempts, self.settings.retry_after_max)
            fields = _fields(response)
            why = None if OPT_OUT_NAMES.isdisjoint(fields) else opted_out(headers, self._opt_out)
            if why is not None:  # the body is left unread: the connection is closed
                return Excluded(f"Opted out ({why}): {url}", attempts, status)
            return await self._read_image(url, response, attempts, open_sink, fields)
        finally:
            await response.aclose()

    async def _send(
        self, url: str, extra: list[tuple[str, str]], away: bool = False
    ) -> httpx.Response:
        """A streamed GET with the client's headers (and `extra`), timeouts and cookies;
        `away` (off the origin after a redirect) leaves the credential headers out."""
        client = self._client
        headers = client.headers
        if extra:
            headers = headers.copy()
            headers.update(extra)
        if self._fast is None:
            request = client.build_request("GET", url, headers=headers)
            if away:
                _drop_credentials(request.headers)
            return await client.send(request, stream=True)
        request = get_request(url, headers, self._extensions)
        if away:
            _drop_credentials(request.headers)
        if client.cookies:
            client.cookies.set_cookie_header(request)
        response = await self._fast.handle_async_request(request)
        response.request = request
        if "set-cookie" in response.headers:
            client.cookies.extract_cookies(response)
        return response

    async def _read_image(
        self,
        url: str,
        response: httpx.Response,
        attempts: int,
        open_sink: Callable[[], Sink],
        fields: dict[str, str],
    ) -> Attempt:
        """Stream the raw body through one decoder into a new sink; abort it on any failure
        (`fields`: the response's headers, `_fields`)."""
        settings = self.settings
        headers = response.headers
        declared = fields.get("content-type")
        if not type_allowed(declared, settings.allowed_types):
            detail = f"content type {media_type(declared)}"
            return failed(FailureKind.NOT_AN_IMAGE, url, detail, 200, attempts)
        try:
            coded = "content-encoding" in fields
            decoder = decoder_for(
                headers.get_list("content-encoding", split_commas=True) if coded else ()
            )
        except DecodeError as exc:
            return failed(FailureKind.BAD_RESPONSE, url, str(exc), 200, attempts)
        declared_size = _declared_size(fields)
        if declared_size is not None and declared_size > settings.max_bytes:
            detail = f"{declared_size} bytes, limit {settings.max_bytes}"
            return failed(FailureKind.TOO_LARGE, url, detail, 200, attempts)
        body = direct_body(response)
        # This transport's body is read as it is: httpx's aiter_raw would only pass each
        # chunk through a generator of its own (its errors are httpx's either way).
        chunks = body if body is not None else response.aiter_raw()
        direct = body if is_identity(decoder) else None
        if response.is_stream_consumed:
            # Read already, so decoded already: only a transport that returns whole
            # responses does this (httpx.MockTransport with Response(content=...)).
            chunks, decoder = _whole(response.content), decoder_for(())
        sink = open_sink()
        head: list[bytes] = []
        try:
            read = await read_body(
                chunks,
                decoder,
                sink,
                max_bytes=settings.max_bytes,
                check=settings.sniff,
                direct=direct,
                head=head,
            )
        except BaseException:
            await sink.abort()
            raise
        if isinstance(read, Refused):
            await sink.abort()
            return failed(read.kind, url, read.detail, 200, attempts)
        kind = read or media_type(declared)
        validators = _validators(response, fields=fields)
        return Fetched(sink, 200, kind or None, attempts, validators, dimensions(b"".join(head)))


# Headers a user may give (-H, fetch.headers) that identify them: as curl and httpx do, they
# go only to the origin (scheme, host, port) of the image's URL, never past a redirect away.
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


def _origin(url: str) -> tuple[str, str, int | None]:
    """A URL's origin: scheme, host and port (the scheme's default when none is given)."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _drop_credentials(headers: httpx.Headers) -> None:
    for name in CREDENTIAL_HEADERS:
        headers.pop(name, None)


async def _whole(content: bytes) -> AsyncIterator[bytes]:
    yield content


THROTTLE_STATUSES = frozenset({429, 503})
# A throttled image's own repeats wait at least this long between attempts.
THROTTLE_BACKOFF_MIN = 0.25
# The refusals of one image that count as signals to its host's gate: its first that the
# gate took as a signal of its own (one that came with others' in a burst does not count).
IMAGE_SIGNALS = 1
_LOAD_FAILURES = (FailureKind.CONNECTION_REFUSED, FailureKind.CONNECTION_RESET)


def _conditional(validators: Validators) -> list[tuple[str, str]]:
    """The request headers that ask for the body only when it is not `validators`' version."""
    headers = []
    if validators.etag:
        headers.append(("If-None-Match", validators.etag))
    if validators.last_modified:
        headers.append(("If-Modified-Since", validators.last_modified))
    return headers


# A validator is sent back verbatim later: printable ASCII only, and not a novel.
_VALIDATOR_MAX = 256


def _validators(
    response: httpx.Response,
    fallback: Validators = NO_VALIDATORS,
    fields: dict[str, str] | None = None,
) -> Validators:
    """The response's ETag and Last-Modified (each as `fallback`'s where it sent none;
    `fields`, when given, the response's headers, `_fields`)."""
    get = response.headers.get if fields is None else fields.get

    def usable(name: str) -> str | None:
        value = get(name, "").strip()
        if not value or len(value) > _VALIDATOR_MAX:
            return None
        return value if value.isascii() and value.isprintable() else None

    return Validators(
        usable("etag") or fallback.etag, usable("last-modified") or fallback.last_modified
    )


# Response headers every image looks up (mostly absent) are read from one dict made per
# response, not by httpx's look-ups: each of those decodes and compares every header (about
# 2 us, more when absent).
OPT_OUT_NAMES = frozenset({"x-robots-tag", TDM})


def _fields(response: httpx.Response) -> dict[str, str]:
    """The response's headers by lower-cased name, each value as `response.headers.get`
    gives it (a repeated header's values joined with ", ")."""
    fields: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        fields[name] = value if name not in fields else f"{fields[name]}, {value}"
    return fields


# The last URL's scheme and authority through the "/" after them, and its gate's host: a
# URL that starts with them has that same authority (urlsplit ends it at the first "/").
_LAST_HOST = ["", ""]


def host_of(url: str) -> str:
    """The host (and port) a politeness gate is kept for: `urlsplit(url).netloc`,
    lower-cased (the last URL's answer again when `url` starts with its authority)."""
    prefix, host = _LAST_HOST
    if prefix and url.startswith(prefix):
        return host
    netloc = urlsplit(url).netloc
    host = netloc.lower()
    scheme_end = url.find("://")
    prefix = url[: scheme_end + 3] + netloc + "/"
    if scheme_end > 0 and url.startswith(prefix):  # nothing before it removed by urlsplit
        _LAST_HOST[:] = [prefix, host]
    return host


def _signal(result: Attempt, *, crowded: bool) -> tuple[Signal, float | None]:
    """What an attempt tells about the host's load, and the wait it asked for."""
    if isinstance(result, Retry):
        if result.status_code in THROTTLE_STATUSES:
            return Signal.THROTTLED, result.delay
        if crowded and result.kind in _LOAD_FAILURES:
            return Signal.OVERLOADED, None
        return Signal.OTHER, None
    return Signal.OK, None


def _declared_size(fields: dict[str, str]) -> int | None:
    """The body size the headers promise, when the body is not content-encoded
    (`fields`: the response's headers, `_fields`)."""
    length = fields.get("content-length")
    if length is None:
        return None
    if fields.get("content-encoding", "identity").strip().lower() != "identity":
        return None
    return int(length) if length.isdigit() else None
