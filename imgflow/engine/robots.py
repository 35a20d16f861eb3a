"""robots.txt (RFC 9309): read once per origin before its first image, and obeyed.

Each origin's (scheme, host, port) robots.txt is fetched through the fetcher's own client,
so proxies, TLS trust and the address guard apply, and passes the host's politeness gate
like any request. What its answer means, per the RFC:

- 2xx: the first `MAX_BYTES` are parsed (protego, Scrapy's parser); the group for
  imgflow's product token applies, else ``*``; Allow/Disallow by the longest match,
  ``*`` and ``$``. A file that is binary or HTML has no rules, so allows all.
- redirects are followed, up to `MAX_REDIRECTS`; more make it unavailable (allow all).
- 4xx: unavailable, everything is allowed (a 429 also tells the host's gate to cool down).
- 5xx, no answer (refused, reset, timed out): asked again up to `retries` times with
  backoff, then unreachable: the whole origin is disallowed for this run. Its images are
  not requested and fail (the robots.txt failure's kind), so `imgflow retry` or a later
  run asks again; an image the rules disallow is excluded (never retried).

Engines in several processes of one run share one reader per origin (a `SharedCache`,
the coordinator of ``--workers``): the first to ask reads it, the others wait for its answer.

A run may keep what it read (a `RobotsCache`, the local index's ``robots`` table): an
answer that was read (2xx, or a 4xx: allow all) is reused by any run that starts within
`MAX_AGE` (24 hours) of its fetch; after that it is read again. An unreachable one (5xx,
no answer) is never kept, so the next run asks again, as the RFC says.

``Crawl-delay`` becomes the host's least spacing between requests (the slower of it and
``--rate`` wins), capped at `FetchConfig.max_crawl_delay` with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego

from imgflow.engine.failures import FailureKind
from imgflow.engine.outcome import Excluded, FetchFailure, transport_failure
from imgflow.engine.politeness import Politeness, Signal
from imgflow.engine.user_agent import PRODUCT

MAX_BYTES = 500 * 1024
MAX_REDIRECTS = 5
MAX_AGE = 24 * 3600.0  # seconds a robots.txt read is reused, across runs
REDIRECTS = frozenset({301, 302, 303, 307, 308})
HEADERS = [("Accept", "text/plain, */*;q=0.5"), ("Accept-Encoding", "identity")]

log = logging.getLogger("imgflow.etiquette")

Send = Callable[[str, list[tuple[str, str]]], Awaitable[httpx.Response]]
Guard = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Rules:
    """What one origin's robots.txt allows: parsed rules, or all, or nothing (`why`)."""

    parser: Protego | None = None
    disallow_all: str | None = None  # why the whole origin is disallowed (unreachable)
    crawl_delay: float | None = None
    kind: FailureKind = FailureKind.HTTP_ERROR  # of an unreachable robots.txt
    status_code: int | None = None
    error: httpx.HTTPError | None = None  # what reading it raised (no answer at all)

    def excluded(self, url: str, shown: str | None = None) -> Excluded | FetchFailure | None:
        """Why `url` may not be requested (named as `shown`), or None when it may."""
        shown = shown or url
        if self.disallow_all is not None:
            message = f"Disallowed by robots.txt ({self.disallow_all}): {shown}"
            return FetchFailure(self.kind, message, self.status_code, 0)
        if self.parser is not None and not self.parser.can_fetch(url, PRODUCT):
            return Excluded(f"Disallowed by robots.txt: {shown}", 0)
        return None


ALLOW_ALL = Rules()


@dataclass(frozen=True)
class Stored:
    """A robots.txt answer kept for later runs: its status, body (2xx) and when it came."""

    status: int
    body: bytes
    fetched_at: float

    def fresh(self, now: float) -> bool:
        """Whether a run may still use it (read less than MAX_AGE ago)."""
        return 0 <= now - self.fetched_at < MAX_AGE

    def rules(self) -> Rules:
        """The rules it stands for (a 4xx: allow all)."""
        if 200 <= self.status < 300:
            parser = parse(self.body)
            return Rules(parser, crawl_delay=parser.crawl_delay(PRODUCT))
        return ALLOW_ALL


class RobotsCache(Protocol):
    """Where robots.txt answers outlive a run (the local index); None on aws."""

    def get(self, origin: str) -> Stored | None:
        """The answer kept for `origin`, if any (maybe stale: the reader checks)."""
        ...

    def put(self, origin: str, stored: Stored) -> None:
        """Keep `origin`'s answer (replacing an older one)."""
        ...


@runtime_checkable
class SharedCache(RobotsCache, Protocol):
    """A cache several engines share (the workers' coordinator): `lease` waits for an
    origin's answer, or returns None when this engine is to read it; the reader then
    `put`s what it read (when kept) and always `settle`s, so another may read it."""

    async def lease(self, origin: str) -> Stored | None:
        """The answer kept for `origin`, or None: this caller reads it (then `settle`)."""
        ...

    def settle(self, origin: str) -> None:
        """This caller's read of `origin` is over (kept or not)."""
        ...


class MemoryCache:
    """Answers in memory, loaded from a store at the start; `take_new` hands the owner
    those read since, to save from its own thread (the index's one writer)."""

    def __init__(self, entries: Mapping[str, Stored] | None = None) -> None:
        self._entries = dict(entries or {})
        self._new: dict[str, Stored] = {}

    def get(self, origin: str) -> Stored | None:
        return self._entries.get(origin)

    def put(self, origin: str, stored: Stored) -> None:
        self._entries[origin] = stored
        self._new[origin] = stored

    def entries(self) -> dict[str, Stored]:
        """Every answer it holds (to hand to a worker process)."""
        return dict(self._entries)

    def take_new(self) -> dict[str, Stored]:
        """The answers read since the last call (and forget them as new)."""
        new, self._new = self._new, {}
        return new


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of `url`, lowercased: what one robots.txt covers."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def parse(body: bytes) -> Protego:
    """The rules of a robots.txt body (bytes that are not UTF-8 are replaced)."""
    return Protego.parse(body.decode("utf-8", errors="replace"))


class Robots:
    """The robots.txt rules of every origin a fetcher talks to, each read once."""

    def __init__(
        self,
        send: Send,
        politeness: Politeness,
        *,
        timeout: float,
        total_timeout: float | None = None,
        max_crawl_delay: float,
        guard: Guard | None = None,
        retries: int = 0,
        backoff: Callable[[int], float] = lambda n: 0.0,
        cache: RobotsCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`timeout`: the longest wait for an answer (a read); `total_timeout`: for a whole
        read of robots.txt (`timeout` when not given). Each is what an image request gets:
        the name's lookup and the connection are the client's connect timeout's, and waiting
        for the host's gate is no part of either (as an image's attempt, which starts once
        its gate lets it go). `backoff(n)`: the seconds to wait before the n-th new try of an
        unreachable one; `cache`: answers kept across runs (read when fresh, given each new
        one)."""
        self._send = send
        self._politeness = politeness
        self._timeout = timeout
        self._total = timeout if total_timeout is None else total_timeout
        self._max_delay = max_crawl_delay
        self._guard = guard
        self._retries = retries
        self._backoff = backoff
        self._loads: dict[str, asyncio.Task[Rules]] = {}
        # The last origin whose rules are in, as `origin/`: a URL under it (every image of a
        # run under one base URL) needs no parse of its own.
        self._last: tuple[str, Rules] = ("", ALLOW_ALL)
        self._cache = cache
        self._clock = clock

    async def check(self, url: str, shown: str | None = None) -> Excluded | FetchFailure | None:
        """Why `url` may not be requested, or None (its origin's robots.txt read first)."""
        return (await self.rules(url)).excluded(url, shown)

    async def rules(self, url: str) -> Rules:
        """The rules for `url`'s origin, read on the first call (others wait for it)."""
        known = self.known(url)
        if known is not None:
            return known
        origin = origin_of(url)
        task = self._loads.get(origin)
        if task is None:
            task = self._loads[origin] = asyncio.ensure_future(self._load(origin))
        rules = await asyncio.shield(task)
        self._last = (f"{origin}/", rules)
        return rules

    def known(self, url: str) -> Rules | None:
        """The rules for `url` when they are in and its origin is the last one asked about
        (no await, no parse: every image of a run under one base URL); else None."""
        prefix, rules = self._last
        return rules if prefix and url.startswith(prefix) else None

    def close(self) -> None:
        """Cancel reads still under way (the run is over)."""
        for task in self._loads.values():
            task.cancel()

    async def _load(self, origin: str) -> Rules:
        shared = self._cache if isinstance(self._cache, SharedCache) else None
        if shared is not None:
            kept = await shared.lease(origin)
        else:
            kept = self._cache.get(origin) if self._cache is not None else None
        try:
            if kept is not None and kept.fresh(self._clock()):
                rules = kept.rules()
            else:
                rules = await self._fetch(origin)
        finally:
            if shared is not None and kept is None:
                shared.settle(origin)
        if rules.crawl_delay:
            self._space(origin, rules.crawl_delay)
        return rules

    async def _fetch(self, origin: str) -> Rules:
        tries = 0
        while True:
            rules = await self._try(origin)
            if rules.disallow_all is None or tries >= self._retries:
                break
            tries += 1
            await asyncio.sleep(self._backoff(tries))
        return rules

    def _keep(self, origin: str, status: int, body: bytes = b"") -> None:
        """An answer that was read (2xx, 4xx): kept for later runs."""
        if self._cache is not None:
            self._cache.put(origin, Stored(status, body, self._clock()))

    async def _try(self, origin: str) -> Rules:
        try:
            rules = await self._read(origin)
        except httpx.ReadTimeout:
            why = f"{origin}/robots.txt: no answer in {self._timeout:g}s"
            rules = Rules(disallow_all=why, kind=FailureKind.TIMED_OUT)
        except TimeoutError:
            why = f"{origin}/robots.txt: not read in full within {self._total:g}s"
            rules = Rules(disallow_all=why, kind=FailureKind.TIMED_OUT)
        except Exception as exc:  # refused, reset, a bad response: unreachable
            detail = str(exc) or type(exc).__name__
            kind = FailureKind.CONNECTION_ERROR
            error = exc if isinstance(exc, httpx.HTTPError) else None
            if error is not None:
                kind = transport_failure(f"{origin}/robots.txt", error, 0).kind
            why = f"{origin}/robots.txt unreachable: {detail}"
            rules = Rules(disallow_all=why, kind=kind, error=error)
        return rules

    async def _read(self, origin: str) -> Rules:
        rules, kept = await self._answer(origin)
        if kept is not None:
            self._keep(origin, *kept)
        return rules

    async def _answer(self, origin: str) -> tuple[Rules, tuple[int, bytes] | None]:
        """The rules, and the (status, body) to keep when the answer was read."""
        url = f"{origin}/robots.txt"
        loop = asyncio.get_running_loop()
        left = self._total  # of the whole read, its redirects' included (TimeoutError)
        for _ in range(MAX_REDIRECTS + 1):
            if self._guard is not None:
                try:
                    await self._guard(url)
                except Exception:  # refused by imgflow's own policy (the address guard)
                    return ALLOW_ALL, None  # not the site's answer: as if it had none
            gate = self._politeness.gate(urlsplit(url).netloc.lower())
            await gate.acquire()  # (its wait counts against no timeout)
            signal = Signal.OTHER
            started = loop.time()
            try:
                async with asyncio.timeout(left):
                    response = await self._send(url, HEADERS)
                try:
                    status = response.status_code
                    if status in (429, 503):  # the host asks to slow down: its gate hears it
                        signal = Signal.THROTTLED
                    if status in REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if 200 <= status < 300:
                        async with asyncio.timeout(left - (loop.time() - started)):
                            body = await _read_capped(response)
                        parser = parse(body)
                        rules = Rules(parser, crawl_delay=parser.crawl_delay(PRODUCT))
                        return rules, (status, body)
                    if 400 <= status < 500:
                        # (a 429 allows all this run, but is not kept: it asks to wait)
                        return ALLOW_ALL, None if status == 429 else (status, b"")
                    why = f"{url} answered {status}"
                    kind = FailureKind.HTTP_ERROR
                    return Rules(disallow_all=why, kind=kind, status_code=status), None
                finally:
                    await response.aclose()
            finally:
                left -= loop.time() - started
                gate.release(signal)
        return ALLOW_ALL, None  # more than MAX_REDIRECTS: unavailable (not kept)

    def _space(self, origin: str, delay: float) -> None:
        if delay > self._max_delay:
            log.warning(
                "%s/robots.txt asks for a Crawl-delay of %gs; imgflow waits at most %gs"
                " between its requests (etiquette.max_crawl_delay)",
                origin,
                delay,
                self._max_delay,
            )
            delay = self._max_delay
        if delay > 0:
            self._politeness.gate(urlsplit(origin).netloc).space(delay)


async def _read_capped(response: httpx.Response) -> bytes:
    """At most MAX_BYTES of the body: the rest is never read."""
    consumed = response.is_stream_consumed  # (a transport that returns whole responses)
    chunks = _whole(response.content) if consumed else response.aiter_raw()
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) >= MAX_BYTES:
            break
    return bytes(body[:MAX_BYTES])


async def _whole(content: bytes) -> AsyncIterator[bytes]:
    yield content
