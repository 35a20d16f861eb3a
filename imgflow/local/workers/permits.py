"""A worker's side of the shared politeness: every host permit comes from the coordinator.

`RemoteGate` stands in for the engine's `HostGate` (same acquire / release / tell /
cool_down), so the fetcher is unchanged: each attempt waits for a permit the coordinator
grants from its own gate of that host (and its run-wide cap on requests in flight), and
gives it back with what the answer said (a 429's Retry-After included). No worker counts
a host on its own, so `--concurrency`, `--rate`/`--burst` and the cool-downs hold across
every worker as if there were one.

Leases: where a grant says so (the host has no rate, no cool-down, no cut), a permit
given back after a success is kept by the worker for its next request to that host, up
to the grant's `keep` (the worker's share; its success still told to the coordinator, a
count per turn of the loop): the slot stays counted in the coordinator's gate, so the sum
of what workers hold never exceeds the host's cap. Slots unused for LEASE_IDLE go back;
the coordinator recalls a host's leases (`recall`) when a cool-down begins: free slots go
back at once, busy ones when their request ends. A paced grant (a host with a rate) is
answered with the time its request takes it (`left`, or when it is found unused), and the
coordinator spaces the next token from then.

Owned hosts: in a run over a table of many hosts, the coordinator gives each host to one
worker (`own`) before any of its items; that worker keeps the host's gate itself (an
`OwnedGate`: the engine's `HostGate`, no permits asked) and tells the coordinator only of
its throttles and changes, for the run's summary and progress line.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from imgflow.engine.plan import Item
from imgflow.engine.politeness import Change, HostGate, OnChange, Politeness, Signal
from imgflow.engine.robots import Stored
from imgflow.local.workers.wire import Outbox

PACED = -1  # a grant's `keep` for a host with a rate: say when it arrived, keep nothing
LEASE_IDLE = 0.05  # seconds a kept slot may stay free before it goes back


class Link:
    """The worker's end of its socket to the coordinator: permits, claims, records."""

    def __init__(self, incoming: AsyncIterator[tuple[Any, ...]], outbox: Outbox) -> None:
        self.incoming = incoming
        self.outbox = outbox
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future[float], str]] = {}
        self._permits: dict[int, RemoteGate] = {}  # asks for a permit, not yet granted
        self.gates: dict[str, RemoteGate] = {}
        self.owned: set[str] = set()  # hosts whose gate is this worker's own
        self._politeness: Politeness | None = None
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
            if kind == "granted":
                self._granted(message[1], message[2], message[3])
            elif kind == "recall":
                gate = self.gates.get(message[1])
                if gate is not None:
                    gate.recall()
            elif kind == "cooled":
                self._answered(message[1], message[2])
            elif kind == "robots-answer":
                self._robots_answered(message[1], message[2], message[3])
            elif kind == "batch":
                self._claims.put_nowait(message)
            elif kind == "own":
                self._own(message[1])
            elif kind == "tell" and self._politeness is not None:
                self._politeness.gate(message[1]).tell(Signal(message[2]), message[3])
            elif kind == "stop":
                stopped = True
                break
        self.gone = not stopped
        self.ended.set()
        self._claims.put_nowait(None)
        for future, _host in self._waiting.values():
            if not future.done():
                future.cancel()
        for gate in self.gates.values():
            gate.ended()
        for waiting in self._robots.values():
            if not waiting.done():
                waiting.cancel()

    def politeness(self, local: Callable[..., HostGate]) -> Politeness:
        """The worker's gates: `local` ones (`OwnedGate`s, made as a fetcher in one process
        makes its gates) for the hosts it owns, `RemoteGate`s for every other host."""

        def make(host: str, on_change: OnChange | None = None) -> HostGate:
            if host in self.owned:
                return local(host, on_change=on_change)
            return RemoteGate(host, link=self)

        self._politeness = Politeness(make, self._changed)
        return self._politeness

    def _changed(self, change: Change) -> None:
        self.send("change", change)

    def _own(self, host: str) -> None:
        """`host` is this worker's from now on: its next use makes a local gate (an
        unused remote one is dropped; the coordinator hands its items only to us now)."""
        self.owned.add(host)
        if self._politeness is not None:
            gate = self._politeness.gates.get(host)
            if isinstance(gate, RemoteGate) and not gate.in_flight and not gate.queue:
                del self._politeness.gates[host]

    def _answered(self, rid: int, cool_until: float) -> None:
        future, _host = self._waiting.pop(rid, (None, ""))
        if future is not None and not future.done():
            future.set_result(cool_until)

    def _granted(self, rid: int, cool_until: float, keep: int) -> None:
        gate = self._permits.pop(rid, None)
        paced = rid if keep == PACED else None
        if gate is not None:
            gate.granted(cool_until, max(0, keep), paced)
        elif paced is not None:
            self.left(paced)

    def left(self, rid: int) -> None:
        """A paced permit is used (or not) now: the coordinator spaces the next from it."""
        self.send("left", rid, time.monotonic())

    def ask_permit(self, gate: RemoteGate) -> None:
        """Ask the coordinator for one more permit at `gate`'s host (`gate.granted`)."""
        rid = next(self._ids)
        self._permits[rid] = gate
        self.send("acquire", rid, gate.host)

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
        """Ask for the end of a cool-down (`cool`) at `host`: the host's cool-down end
        (time.monotonic, one clock for every process)."""
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
        self.free = 0  # leased slots this worker holds and no request uses
        self.keep = 0  # slots it may keep (its lease, from the last grant; 0: none)
        self.asking = 0  # permits asked for, not yet granted
        self.queue: deque[asyncio.Future[int | None]] = deque()  # requests waiting for a slot
        self.oks = 0  # successes on kept slots not yet told
        self.idle = 0  # free slots none of this worker's requests took since the last look
        self._looking = False
        link.gates[host] = self

    async def acquire(self) -> None:
        """Take a slot: a leased one that is free, else the coordinator's next permit."""
        if self.free and not self.queue:
            self.free -= 1
            self.idle = min(self.idle, self.free)
        else:
            waiter: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            self.queue.append(waiter)
            if self.asking < len(self.queue):
                self.asking += 1
                self.link.ask_permit(self)
            if self.link.ended.is_set():
                waiter.cancel()
            try:
                paced = await waiter
            except BaseException:
                if waiter in self.queue:
                    self.queue.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._slot(waiter.result())  # given a slot as it was cancelled
                raise
            if paced is not None:  # as late as the gate can: its request leaves now
                self.link.left(paced)
        self.in_flight += 1

    def granted(self, cool_until: float, keep: int, paced: int | None = None) -> None:
        """The coordinator's permit (and how many slots this worker may keep): to the
        first waiting request (`paced`: the grant whose use the coordinator waits for)."""
        self.asking = max(0, self.asking - 1)
        self.cool_until = cool_until
        self.keep = keep
        self._slot(paced)

    def release(self, signal: Signal, retry_after: float | None = None) -> bool:
        """Give the permit back with what the request told about the host (a success on
        a lease: the slot is kept, the success told). The coordinator's gate takes a
        refusal without answering whether it took it as a signal: each counts as taken."""
        self.in_flight = max(0, self.in_flight - 1)
        if signal is Signal.OK and self.in_flight + self.free < self.keep:
            self.oks += 1
            if self.oks == 1:
                asyncio.get_running_loop().call_soon(self._tell_oks)
            self._slot()
        else:
            self.link.send("release", self.host, signal.value, retry_after)
        return signal.refused

    def recall(self) -> None:
        """The coordinator wants this host's slots: free ones now, busy ones when done."""
        self.keep = 0
        count, self.free = self.free, 0
        if count:
            self.link.send("return", self.host, count)

    def ended(self) -> None:
        """The coordinator is gone: no permit will come."""
        for waiter in self.queue:
            waiter.cancel()

    def _slot(self, paced: int | None = None) -> None:
        """A slot this worker holds is free: to the next waiting request, else kept
        (a lease), else given back."""
        while self.queue:
            waiter = self.queue.popleft()
            if not waiter.done():
                waiter.set_result(paced)
                return
        if paced is not None:
            self.link.left(paced)
        if self.in_flight + self.free < self.keep:
            self.free += 1
            if not self._looking:
                self._looking = True
                self.idle = self.free
                asyncio.get_running_loop().call_later(LEASE_IDLE, self._give_idle)
        else:
            self.link.send("release", self.host, Signal.OTHER.value, None)

    def _give_idle(self) -> None:
        """Slots that stayed free a while go back (another worker may want them)."""
        count = min(self.idle, self.free)
        self.free -= count
        if count:
            self.link.send("return", self.host, count)
        self.idle = self.free
        self._looking = bool(self.free)
        if self._looking:
            asyncio.get_running_loop().call_later(LEASE_IDLE, self._give_idle)

    def _tell_oks(self) -> None:
        count, self.oks = self.oks, 0
        if count:
            self.link.send("ok", self.host, count)

    def tell(self, signal: Signal, retry_after: float | None = None) -> bool:
        """What a redirect to this host told about it (no permit was taken here)."""
        self.link.send("tell", self.host, signal.value, retry_after)
        return signal.refused

    async def cool_down(self) -> None:
        """Wait out the host's cool-down, as the coordinator counts it."""
        self.cool_until = await self.link.ask("cool", self.host)


class OwnedGate(HostGate):
    """The engine's gate of a host this worker alone talks to; its throttles are told to
    the coordinator (the run's summary counts them)."""

    def __init__(self, host: str, ceiling: int, *, link: Link, **settings: Any) -> None:
        super().__init__(host, ceiling, **settings)
        self.link = link

    def tell(self, signal: Signal, retry_after: float | None = None) -> bool:
        before = self.throttles
        taken = super().tell(signal, retry_after)
        if self.throttles > before:
            self.link.send("throttled", self.host, self.throttles - before)
        return taken


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
