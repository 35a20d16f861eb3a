"""The coordinator of a run on several worker processes (it runs in the run's process).

It owns what must be counted once for the whole run:

- **the index**: it is its one writer; workers send records, it saves them (the runner's
  buffer and flush, as for a run in one process);
- **the claims**: batches are handed out one claim at a time (a worker asks when it has
  room for a batch), so a slow worker never holds the end of a run; a worker that ends
  without finishing its claims (killed, crashed) has the items it sent no record for put
  back in the queue and a new worker started in its place;
- **politeness**: every host's `HostGate` (imgflow/engine/politeness.py, unchanged) and the
  run's cap on requests in flight live here; a worker's `RemoteGate` asks for a permit
  before each request and gives it back with what the answer said. One gate per host for
  the whole run, so its slots, tokens and cool-downs are the same counts as in one process;
- **robots.txt**: the run's one cache of answers (the index's fresh ones, then those read).
  A worker's `RemoteRobots` asks for an origin's answer; the first asker gets a lease to
  read it, the others wait until it puts the answer (all get it) or settles without one
  (a 5xx, unreachable: not kept) or dies: then the next waiter gets the lease.

- **hosts, where a job has many**: a table of full URLs with at least as many hosts (in
  its first batch) as workers is partitioned: each host is given to one worker (the one
  with the fewest items so far, when the host is first seen; a dead worker's hosts go to
  the others the same way) before any of its items, and that worker keeps the host's gate
  itself (`OwnedGate`): no permit round trips, its connections and DNS answers its own.
  Only one worker ever talks to the host, so its gate counts every request to it. The
  run's cap on requests in flight is split among the workers (each one's share is its
  pool and its run-wide semaphore: the shares add up to the cap).

A stop (a signal, the stop event) tells every worker to stop, waits a few seconds for their
last records, then kills what is left: no worker outlives the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from imgflow.engine.fetch import host_of
from imgflow.engine.plan import Item
from imgflow.engine.politeness import HostGate, OnChange, Politeness, Signal
from imgflow.engine.ports import StoredObject
from imgflow.engine.records import ResultRecord
from imgflow.engine.robots import Stored
from imgflow.engine.settings import FetchConfig
from imgflow.errors import BackendError
from imgflow.local.layouts.shards import WrittenShard
from imgflow.local.stopping import Stopper
from imgflow.local.workers.permits import PACED
from imgflow.local.workers.wire import Outbox, messages
from imgflow.local.workers.worker import WorkerStart

STOP_GRACE = 3.0  # seconds workers have to send their last records after a stop
READ_AHEAD = 2  # batches read from the source ahead of the claims, per worker


class Run(Protocol):
    """What the coordinator needs of the run it serves (the local runner)."""

    def known(self, batch: Sequence[Item]) -> dict[str, StoredObject] | None:
        """Index rows of the batch's items to skip or revalidate."""
        ...

    def take(self, record: ResultRecord, finished: float, mtime: int | None) -> None:
        """A worker's record (saved with the next flush)."""
        ...

    def kept_robots(self, read: Mapping[str, Stored]) -> None:
        """robots.txt answers a worker read (saved with the next flush)."""
        ...

    def seen(self, record: ResultRecord) -> None:
        """A worker stored a sample in its open shard (the progress hears of it)."""
        ...

    def commit_shard(self, folder: str, written: WrittenShard) -> None:
        """Commit a shard a worker wrote whole in its `folder` of the run's tmp folder."""
        ...


class SharedGate(HostGate):
    """A host's gate of the run (the engine's), and what the coordinator asks of it."""

    def leasable(self) -> bool:
        """A permit may be kept by its worker for its next request: the cap is the only
        limit (no rate, whose tokens cannot be handed out ahead; no cool-down; no cut)."""
        return (
            self.rate is None and self.cool_until <= self._clock() and self.allowed >= self.ceiling
        )

    def left(self, at: float) -> None:
        """The request of the last token left at `at` (its worker's clock, the same
        monotonic one): the next token is spaced from then, not from the grant."""
        if self.rate is not None and at > self._filled:
            self._filled = at


def politeness(settings: FetchConfig, ceiling: int, on_change: OnChange | None) -> Politeness:
    """The run's gates, made as a fetcher in one process makes its own."""
    return Politeness(
        functools.partial(
            SharedGate,
            ceiling=ceiling,
            rate=settings.rate,
            burst=settings.burst,
            backoff_base=max(settings.backoff_base, 0.05),
            backoff_max=max(settings.backoff_max, 0.1),
            adaptive_rate=settings.adaptive_rate,
        ),
        on_change,
    )


@dataclass(eq=False)
class _Claim:
    """A batch handed to one worker, and the items it sent records for."""

    items: list[Item]
    done: set[str] = field(default_factory=set)

    def left(self) -> list[Item]:
        """The items with no record yet: what goes back to the queue if the worker ends."""
        return [item for item in self.items if item.url not in self.done]


@dataclass(eq=False)
class _Peer:
    """One worker process, as the coordinator knows it."""

    proc: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    outbox: Outbox
    claims: dict[int, _Claim] = field(default_factory=dict)  # batches not yet recorded
    held: list[str] = field(default_factory=list)  # hosts of permits granted, not returned
    leasing: set[str] = field(default_factory=set)  # hosts whose permits it may keep
    leaving: dict[int, asyncio.Future[float]] = field(default_factory=dict)  # paced grants
    asks: set[asyncio.Task[None]] = field(default_factory=set)
    queue: deque[list[Item]] = field(default_factory=deque)  # its hosts' items to claim
    hosts: set[str] = field(default_factory=set)  # hosts it owns (a partitioned run)
    load: int = 0  # items of its hosts handed to it so far
    share: int = 0  # its part of the run's cap on requests in flight (0: the whole cap)
    finished: bool = False  # told there is no more work
    gone: bool = False  # its socket ended (it is being cleaned up after)
    task: asyncio.Task[None] | None = None


def partitioned(first: Sequence[Item], start: WorkerStart, count: int) -> bool:
    """Whether a run's hosts are given to its workers: a table of full URLs whose first
    batch has at least as many hosts as workers (fewer: a worker would have none), and a
    cap on requests in flight of at least one per worker (each keeps a share of it)."""
    hosts = {host_of(item.url) for item in first}
    return start.per_host and len(hosts) >= count and start.in_flight >= count


class Coordinator:
    """Runs a run's batches on `count` worker processes; see the module's description."""

    def __init__(
        self,
        run: Run,
        batches: AsyncIterator[list[Item]],
        start: WorkerStart,
        count: int,
        *,
        on_change: OnChange | None = None,
        on_seal: Callable[[], None] = lambda: None,
        stop_event: threading.Event | None = None,
        on_warn: Callable[[str], None] | None = None,
    ) -> None:
        self.run = run
        self.batches = batches
        self.start = start
        self.count = count
        self.politeness = politeness(start.settings.fetch, start.host_cap, on_change)
        self.on_seal = on_seal
        self.stop_event = stop_event
        self.on_warn = on_warn
        self.ready: deque[list[Item]] = deque()
        self.fed = False  # every batch of the source is in `ready` (or handed out)
        self._hungry = asyncio.Event()  # `ready` is short: the feeder reads on
        self.peers: list[_Peer] = []
        self.parked: list[_Peer] = []
        self.stopping = False
        self.restarts = 2 * count
        self._ids = itertools.count()
        self._total: asyncio.Semaphore | None = None
        self.robots: dict[str, Stored] = dict(start.robots or {})
        self.leases: dict[str, _Peer] = {}  # origin: the worker reading its robots.txt
        self.robots_waiting: dict[str, deque[tuple[_Peer, int]]] = {}
        self.pacers: dict[str, asyncio.Lock] = {}  # a rated host's grants, one at a time
        self.partitioned = False  # hosts given to workers (see the module's description)
        self.owners: dict[str, _Peer] = {}
        self.owned_throttles: dict[str, int] = {}  # throttles at hosts workers own

    async def run_all(self) -> bool:
        """Run every batch; False (nothing run) when not even one worker could start."""
        self._total = asyncio.Semaphore(self.start.in_flight)
        first = await anext(self.batches, None)
        if first is None:
            return True  # nothing pending: no process to start
        self.partitioned = partitioned(first, self.start, self.count)
        feeder: asyncio.Task[None] | None = None
        try:
            if not await self._spawn_all():
                return False
            self._route(first)
            self._unpark()
            feeder = asyncio.create_task(self._feed())
            with Stopper(self.on_seal, self.stop_event).watching():
                try:
                    await self._until_done(feeder)
                except asyncio.CancelledError:
                    await self._stop_all()
                    raise
        finally:
            if feeder is not None:
                feeder.cancel()
            self._reap()
        return True

    async def _feed(self) -> None:
        """Queue the source's batches a few ahead of the claims: those of a table still
        being planned as they are planned, so workers claim while the plan goes on."""
        async for batch in self.batches:
            self._route(batch)
            self._unpark()
            while self._full():
                self._hungry.clear()
                await self._hungry.wait()
        self.fed = True
        self._unpark()

    async def _spawn_all(self) -> bool:
        """Start the workers; a machine that starts fewer (a limit on processes) is a
        warning. False when none started."""
        problem = ""
        in_flight = self.start.in_flight
        for n in range(self.count):
            share = in_flight // self.count + (n < in_flight % self.count)
            try:
                await self._spawn(share if self.partitioned else 0)
            except OSError as exc:
                problem = os.strerror(exc.errno) if exc.errno else str(exc)
                break
        if problem:
            self._warn(
                f"could start only {len(self.peers)} of {self.count} workers ({problem})"
                + ("; running in one process" if not self.peers else "")
            )
        return bool(self.peers)

    def throttles(self) -> dict[str, int]:
        """How often each host throttled the run."""
        counts = self.politeness.throttles()
        for host, count in self.owned_throttles.items():
            counts[host] = counts.get(host, 0) + count
        return counts

    # -- workers -----------------------------------------------------------------------

    async def _spawn(self, share: int = 0) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "imgflow.local.workers.worker",
                    str(theirs.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                process_group=0,  # a Ctrl-C at the terminal is the coordinator's to handle
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        peer = _Peer(proc, reader, Outbox(writer), share=share)
        start = dataclasses.replace(self.start, in_flight=share) if share else self.start
        peer.outbox.send("start", start)
        peer.task = asyncio.create_task(self._serve(peer))
        self.peers.append(peer)

    async def _until_done(self, feeder: asyncio.Task[None]) -> None:
        while live := [p.task for p in self.peers if p.task is not None and not p.task.done()]:
            waited = live if feeder.done() else [*live, feeder]
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if feeder.done():
                feeder.result()  # the rest of a streamed table is unreadable: the run ends
        for peer in self.peers:
            if peer.task is not None:
                peer.task.result()  # an index error stops the run
        if self._queued() or self._outstanding() or not self.fed:
            raise BackendError("the run's workers keep ending before their work is done")

    async def _stop_all(self) -> None:
        """Tell every worker to stop; wait a little for their last records."""
        self.stopping = True
        live = [p.task for p in self.peers if p.task is not None and not p.task.done()]
        for peer in self.peers:
            peer.outbox.send("stop")
        if live:
            await asyncio.wait(live, timeout=STOP_GRACE)

    def _reap(self) -> None:
        """No worker outlives the run: kill those still there, wait for every one."""
        grace = STOP_GRACE if not self.stopping else 0.5
        self.stopping = True  # (an error on the way out: no worker is started again)
        for peer in self.peers:
            if peer.proc.poll() is None:
                peer.outbox.send("stop")
                peer.outbox.flush()
        for peer in self.peers:
            if peer.task is not None:
                peer.task.cancel()
            with contextlib.suppress(subprocess.TimeoutExpired):
                peer.proc.wait(timeout=grace)
            if peer.proc.poll() is None:
                peer.proc.kill()
                peer.proc.wait()
            peer.outbox.writer.close()

    def _warn(self, message: str) -> None:
        if self.on_warn is not None:
            self.on_warn(message)

    # -- one worker's messages -----------------------------------------------------------

    async def _serve(self, peer: _Peer) -> None:
        try:
            async for message in messages(peer.reader):
                kind = message[0]
                if kind == "record":
                    self._recorded(peer, message[1], message[2], message[3], message[4])
                elif kind == "seen":
                    self.run.seen(message[1])
                elif kind == "shard":
                    self._shard(peer, message[1], message[2], message[3])
                elif kind == "acquire" or kind == "cool":
                    ask = asyncio.create_task(self._answer(peer, kind, message[1], message[2]))
                    peer.asks.add(ask)
                    ask.add_done_callback(peer.asks.discard)
                elif kind == "release":
                    self._release(peer, message[1], Signal(message[2]), message[3])
                elif kind == "ok":
                    gate = self.politeness.gate(message[1])
                    for _ in range(message[2]):
                        gate.tell(Signal.OK)
                elif kind == "return":
                    for _ in range(message[2]):
                        self._release(peer, message[1], Signal.OTHER, None)
                elif kind == "left":
                    left = peer.leaving.pop(message[1], None)
                    if left is not None and not left.done():
                        left.set_result(message[2])
                elif kind == "tell":
                    self._tell(peer, message[1], Signal(message[2]), message[3])
                elif kind == "throttled":
                    host = message[1]
                    self.owned_throttles[host] = self.owned_throttles.get(host, 0) + message[2]
                elif kind == "change" and self.politeness.on_change is not None:
                    self.politeness.on_change(message[1])
                elif kind == "claim":
                    self._claim(peer)
                elif kind == "robots-ask":
                    self._robots_ask(peer, message[1], message[2])
                elif kind == "robots":
                    self._robots_read(message[1])
                elif kind == "robots-done":
                    self._robots_done(peer, message[1])
        finally:
            await self._ended(peer)

    async def _answer(self, peer: _Peer, kind: str, rid: int, host: str) -> None:
        """A permit for one request to `host` (the run's cap, then the host's gate), or
        the end of its cool-down."""
        gate = self.politeness.gate(host)
        if kind == "cool":
            await gate.cool_down()
            peer.outbox.send("cooled", rid, gate.cool_until)
            return
        if gate.rate is None:
            await self._grant(peer, rid, host, gate)
            return
        pacer = self.pacers.setdefault(host, asyncio.Lock())
        async with pacer:  # one grant at a time, each spaced from when the last one left
            await self._grant(peer, rid, host, gate)

    async def _grant(self, peer: _Peer, rid: int, host: str, gate: HostGate) -> None:
        total = self._total
        assert total is not None and isinstance(gate, SharedGate)
        live = max(1, sum(1 for p in self.peers if p.task is not None and not p.task.done()))
        share, total_share = max(1, gate.allowed // live), max(1, self.start.in_flight // live)
        # (a worker keeps at most its share: a busy one gives back what it holds beyond
        # it as its requests end, an idle one what it keeps after LEASE_IDLE)
        await total.acquire()
        try:
            await gate.acquire()
        except BaseException:
            total.release()
            raise
        peer.held.append(host)
        if gate.rate is not None:
            left = asyncio.get_running_loop().create_future()
            peer.leasing.discard(host)
            peer.leaving[rid] = left
            peer.outbox.send("granted", rid, gate.cool_until, PACED)
            gate.left(await left)
            return
        # the worker may keep up to its share of the host's cap and of the run's
        keep = min(share, total_share) if gate.leasable() else 0
        if keep:
            peer.leasing.add(host)
        else:
            peer.leasing.discard(host)
        peer.outbox.send("granted", rid, gate.cool_until, keep)

    def _tell(self, peer: _Peer, host: str, signal: Signal, retry_after: float | None) -> None:
        """What a redirect told of `host`: its gate hears it (the worker's that owns it)."""
        owner = self.owners.get(host)
        if owner is not None and owner is not peer:
            owner.outbox.send("tell", host, signal.value, retry_after)
        self.politeness.gate(host).tell(signal, retry_after)
        self._throttled(host, signal)

    def _recall(self, peer: _Peer | None, host: str | None) -> None:
        """Workers (`peer`, or every one) give back the slots they keep of `host` (of
        every host: None)."""
        for each in self.peers if peer is None else [peer]:
            hosts = list(each.leasing) if host is None else [host] * (host in each.leasing)
            for leased in hosts:
                each.leasing.discard(leased)
                each.outbox.send("recall", leased)

    def _throttled(self, host: str, signal: Signal) -> None:
        """A cool-down begins: no worker keeps a slot of the host past its request."""
        if signal.refused:
            self._recall(None, host)

    # -- robots.txt ----------------------------------------------------------------------

    def _fresh(self, origin: str) -> Stored | None:
        stored = self.robots.get(origin)
        return stored if stored is not None and stored.fresh(time.time()) else None

    def _robots_ask(self, peer: _Peer, rid: int, origin: str) -> None:
        """An origin's answer, or a lease to read it; or wait for the one who reads it."""
        stored = self._fresh(origin)
        if stored is None and origin in self.leases:
            self.robots_waiting.setdefault(origin, deque()).append((peer, rid))
            return
        if stored is None:
            self.leases[origin] = peer
        peer.outbox.send("robots-answer", rid, origin, stored)

    def _robots_read(self, read: Mapping[str, Stored]) -> None:
        """Answers a worker read: kept for the run (and the index), given to its waiters."""
        self.run.kept_robots(read)
        self.robots.update(read)
        for origin in read:
            self._robots_next(origin)

    def _robots_done(self, peer: _Peer, origin: str) -> None:
        if self.leases.get(origin) is peer:
            del self.leases[origin]
            self._robots_next(origin)

    def _robots_next(self, origin: str) -> None:
        """Answer an origin's waiters when it has an answer; else lease the next one."""
        waiting = self.robots_waiting.get(origin)
        stored = self._fresh(origin)
        while waiting and (stored is not None or origin not in self.leases):
            peer, rid = waiting.popleft()
            if stored is None:
                self.leases[origin] = peer
            peer.outbox.send("robots-answer", rid, origin, stored)
        if not waiting:
            self.robots_waiting.pop(origin, None)

    def _robots_gone(self, peer: _Peer) -> None:
        """A worker is gone: its waits end, and its leases go to the next waiters."""
        for origin, waiting in list(self.robots_waiting.items()):
            self.robots_waiting[origin] = deque(w for w in waiting if w[0] is not peer)
        for origin, holder in list(self.leases.items()):
            if holder is peer:
                del self.leases[origin]
                self._robots_next(origin)
        for origin in [o for o, w in self.robots_waiting.items() if not w]:
            del self.robots_waiting[origin]

    def _release(self, peer: _Peer, host: str, signal: Signal, retry_after: float | None) -> None:
        if host in peer.held:
            peer.held.remove(host)
            self.politeness.gate(host).release(signal, retry_after)
            assert self._total is not None
            self._total.release()
            self._throttled(host, signal)

    def _recorded(
        self, peer: _Peer, batch: int, record: ResultRecord, finished: float, mtime: int | None
    ) -> None:
        claim = peer.claims.get(batch)
        if claim is None or record.url in claim.done:
            return  # not an item of this worker's claims, or recorded already
        claim.done.add(record.url)
        self.run.take(record, finished, mtime)
        if len(claim.done) >= len(claim.items):
            del peer.claims[batch]
            self._unpark()

    def _shard(
        self, peer: _Peer, folder: str, written: WrittenShard, batches: Sequence[int]
    ) -> None:
        """A worker's shard, written whole: committed here, the run's one index writer
        (its number, its rows, its rename in one transaction); its samples' claims are
        then done. A worker killed before sending it has these items run again."""
        self.run.commit_shard(folder, written)
        for batch, url in zip(batches, written.urls, strict=True):
            claim = peer.claims.get(batch)
            if claim is None:
                continue
            claim.done.add(url)
            if len(claim.done) >= len(claim.items):
                del peer.claims[batch]
        self._unpark()

    async def _ended(self, peer: _Peer) -> None:
        """A worker is gone: its permits go back, its unrecorded items back in the queue."""
        peer.gone = True
        for ask in list(peer.asks):
            ask.cancel()
        for host in peer.held:
            self.politeness.gate(host).release(Signal.OTHER)
            assert self._total is not None
            self._total.release()
        peer.held.clear()
        peer.leasing.clear()
        self._robots_gone(peer)
        if peer in self.parked:
            self.parked.remove(peer)
        left = [item for claim in peer.claims.values() for item in claim.left()]
        peer.claims.clear()
        queued, peer.queue = list(peer.queue), deque()
        for host in peer.hosts:  # (given again as their items are routed)
            del self.owners[host]
        peer.hosts.clear()
        if self.stopping or (peer.finished and not left and not queued):
            return
        pid = peer.proc.pid
        if self.restarts > 0:
            self.restarts -= 1
            self._warn(f"worker {pid} ended; its {len(left)} unfinished images run again")
            with contextlib.suppress(OSError):
                await self._spawn(peer.share)
        for batch in [left, *queued] if left else queued:
            self._route(batch)
        self._unpark()

    # -- claims ----------------------------------------------------------------------------

    def _route(self, batch: list[Item]) -> None:
        """Queue a batch: for any worker, or (a partitioned run) each item for the worker
        that owns its host, a host first seen given to the worker with the fewest items."""
        if not self.partitioned:
            self.ready.append(batch)
            return
        parts: dict[int, tuple[_Peer, list[Item]]] = {}
        for item in batch:
            host = host_of(item.url)
            owner = self.owners.get(host) or self._give(host)
            if owner is None:  # (no worker left to give it to: any worker's to claim)
                self.ready.append([item])
                continue
            parts.setdefault(id(owner), (owner, []))[1].append(item)
            owner.load += 1
        for owner, items in parts.values():
            owner.queue.append(items)

    def _give(self, host: str) -> _Peer | None:
        """Give `host` to the live worker with the fewest items so far."""
        live = [p for p in self.peers if not p.finished and not p.gone]
        if not live:
            return None
        owner = min(live, key=lambda p: p.load)
        self.owners[host] = owner
        owner.hosts.add(host)
        owner.outbox.send("own", host)
        return owner

    def _full(self) -> bool:
        """Enough is queued ahead of the claims (more, while a worker has none of its own)."""
        queued = len(self.ready) + sum(len(peer.queue) for peer in self.peers)
        most = READ_AHEAD * self.count
        if self.partitioned and any(not (p.queue or p.finished or p.gone) for p in self.peers):
            most *= 4
        return queued >= most

    def _take(self, peer: _Peer) -> list[Item] | None:
        """The next batch to hand `peer` (of its own hosts; else one put back, or the
        source's next), if any yet."""
        queue = peer.queue or self.ready
        if not queue:
            return None
        self._hungry.set()
        return queue.popleft()

    def _queued(self) -> bool:
        return bool(self.ready) or any(peer.queue for peer in self.peers)

    def _outstanding(self) -> bool:
        return any(peer.claims or peer.queue for peer in self.peers)

    def _claim(self, peer: _Peer) -> None:
        batch = self._take(peer)
        if batch is not None:
            self._hand(peer, batch)
        elif not self.fed or (self._outstanding() and not peer.claims):
            # more may be planned yet, or another worker may yet end and leave items
            self.parked.append(peer)
        else:  # (a worker holding claims, a shard's samples: it commits them and ends)
            self._no_more(peer)

    def _hand(self, peer: _Peer, batch: list[Item]) -> None:
        claim = next(self._ids)
        peer.claims[claim] = _Claim(batch)
        items = [(item.url, item.key, dict(item.meta), item.path) for item in batch]
        peer.outbox.send("batch", claim, items, self.run.known(batch))

    def _no_more(self, peer: _Peer) -> None:
        peer.finished = True
        peer.outbox.send("batch", None, None, None)

    def _unpark(self) -> None:
        for peer in list(self.parked):
            batch = self._take(peer)
            if batch is not None:
                self.parked.remove(peer)
                self._hand(peer, batch)
        if self.fed and not self._queued():
            # no more work: a worker holding claims (a shard's samples) commits them
            # and ends; the others wait while claims are open, then end too
            for peer in [p for p in self.parked if p.claims or not self._outstanding()]:
                self.parked.remove(peer)
                self._no_more(peer)
