"""A worker's side of the shared politeness: every host permit comes from the coordinator.

`RemoteGate` stands in for the engine's `HostGate` (same acquire / release / tell /
cool_down), so the fetcher is unchanged: each attempt waits for a permit the coordinator
grants from its own gate of that host (and its run-wide cap on requests in flight), and
gives it back with what the answer said (a 429's Retry-After included). No worker counts
a host on its own, so `--concurrency`, `--rate`/`--burst` and the cool-downs hold across
every worker as if there were one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

from imgflow.engine.plan import Item
from imgflow.engine.politeness import HostGate, OnChange, Signal
from imgflow.engine.robots import Stored
from imgflow.local.workers.wire import Outbox


class Link:
    """The worker's end of its socket to the coordinator: permits, claims, records."""

    def __init__(self, incoming: AsyncIterator[tuple[Any, ...]], outbox: Outbox) -> None:
        self.incoming = incoming
        self.outbox = outbox
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future[float], str]] = {}
        self._robots: dict[int, asyncio.Future[Stored | None]] = {}
        self._claims: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
        self.ended = asyncio.Event()  # the coordinator said stop, or is gone
        self.gone = False

    def send(self, *message: Any) -> None:
        self.outbox.send(*message)

    async def pump(self) -> None:
        """Hand each message from the coordinator to whoever waits for it, until it ends."""
        stopped = False
        async for message in self.incoming:
            kind = message[0]
            if kind == "granted" or kind == "cooled":
                self._answered(message[1], message[2], kind == "granted")
            elif kind == "robots-answer":
                self._robots_answered(message[1], message[2], message[3])
            elif kind == "batch":
                self._claims.put_nowait(message)
            elif kind == "stop":
                stopped = True
                break
        self.gone = not stopped
        self.ended.set()
        self._claims.put_nowait(None)
        for future, _host in self._waiting.values():
            if not future.done():
                future.cancel()
        for waiting in self._robots.values():
            if not waiting.done():
                waiting.cancel()

    def _answered(self, rid: int, cool_until: float, granted: bool) -> None:
        future, host = self._waiting.pop(rid, (None, ""))
        if future is not None and not future.done():
            future.set_result(cool_until)
        elif granted:  # its request was cancelled while it waited: the permit goes back
            self.send("release", host, Signal.OTHER.value, None)

    def _robots_answered(self, rid: int, origin: str, stored: Stored | None) -> None:
        future = self._robots.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(stored)
        elif stored is None:  # a lease for an ask that was cancelled: given back
            self.send("robots-done", origin)

    async def robots(self, origin: str) -> Stored | None:
        """The run's robots.txt answer for `origin`, or None: a lease to read it."""
        rid = next(self._ids)
        future: asyncio.Future[Stored | None] = asyncio.get_running_loop().create_future()
        self._robots[rid] = future
        self.send("robots-ask", rid, origin)
        if self.ended.is_set():
            future.cancel()
        return await future

    async def ask(self, kind: str, host: str) -> float:
        """Ask for a permit (`acquire`) or the end of a cool-down (`cool`) at `host`;
        the host's cool-down end (time.monotonic, one clock for every process)."""
        rid = next(self._ids)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = (future, host)
        self.send(kind, rid, host)
        if self.ended.is_set():
            future.cancel()
        return await future

    async def claim(self) -> tuple[int, list[Item], Any] | None:
        """The next batch this worker runs (id, items, known rows), or None: no more."""
        if self.ended.is_set():
            return None
        self.send("claim")
        message = await self._claims.get()
        if message is None or message[1] is None:
            return None
        items = [
            Item(url, key, meta, path) if meta else Item(url, key, path=path)
            for url, key, meta, path in message[2]
        ]
        return message[1], items, message[3]


class RemoteGate(HostGate):
    """A host's gate whose slots, tokens and cool-downs are the coordinator's."""

    def __init__(self, host: str, *, link: Link, on_change: OnChange | None = None) -> None:
        super().__init__(host, 1)
        self.link = link

    async def acquire(self) -> None:
        """Wait for the coordinator's permit for one request to this host."""
        self.cool_until = await self.link.ask("acquire", self.host)
        self.in_flight += 1

    def release(self, signal: Signal, retry_after: float | None = None) -> None:
        """Give the permit back with what the request told about the host."""
        self.in_flight = max(0, self.in_flight - 1)
        self.link.send("release", self.host, signal.value, retry_after)

    def tell(self, signal: Signal, retry_after: float | None = None) -> None:
        """What a redirect to this host told about it (no permit was taken here)."""
        self.link.send("tell", self.host, signal.value, retry_after)

    async def cool_down(self) -> None:
        """Wait out the host's cool-down, as the coordinator counts it."""
        self.cool_until = await self.link.ask("cool", self.host)


class RemoteRobots:
    """The engine's robots.txt cache (a `SharedCache`) that is the coordinator's: one
    worker of the run reads an origin's robots.txt, the others wait for its answer."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def get(self, origin: str) -> Stored | None:
        return None  # (asked of the coordinator by `lease`)

    async def lease(self, origin: str) -> Stored | None:
        return await self.link.robots(origin)

    def put(self, origin: str, stored: Stored) -> None:
        self.link.send("robots", {origin: stored})

    def settle(self, origin: str) -> None:
        self.link.send("robots-done", origin)
