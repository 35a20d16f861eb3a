"""Scheduling per host: items of many hosts, each host's queue on its own.

A run of full URLs (a table from many sites) is not cut into batches of one host's paths:
`run_hosts` keeps one queue per host (scheme, host and port) and one lane of workers per
host with items queued, so a host that is slow, throttling (429 + Retry-After) or paused
never holds another host's items up.

Two limits hold every request:

- **per host**: the host's gate (`HostGate`, made with `ceiling=concurrency` and the run's
  rate) lets at most `concurrency` requests of the host go at once, at `--rate`, and holds
  them through its cool-down;
- **in all**: the fetcher's connection pool (`max_connections=max_in_flight`) sends at most
  that many requests at once, whatever their host, and a request takes its slot there only
  once its host's gate has let it go: a host waiting for its cool-down, its rate's next
  token or its own slots holds none of the shared slots.

The reader stays ahead of the fetches by at most `lookahead` items in memory (memory
stays flat whatever the table's size), and a host holds at most its share of them
(`host_share`): a host's later items wait on disk (`imgflow.engine.spill`) and come back
in order as its queue runs low, so a slow host's backlog never stops the reader from
reaching the other hosts' items. The circuit breaker (`imgflow.engine.breaker`) hears
every record; a paused host's queued and later items fail at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Callable, Mapping
from concurrent.futures import Executor
from urllib.parse import urlsplit

from imgflow.engine.batch import OnRecord, failed_record, process_item
from imgflow.engine.breaker import Breaker
from imgflow.engine.fetch import Fetcher
from imgflow.engine.plan import Item
from imgflow.engine.ports import ObjectStore, StoredObject
from imgflow.engine.records import ResultRecord
from imgflow.engine.spill import Spill

Stored = Mapping[str, StoredObject] | None
Known = Callable[[list[Item]], Stored]
SHARE = 10  # a host holds at most 1/SHARE of the lookahead in memory


def host_share(lookahead: int, concurrency: int) -> int:
    """How many items of one host are held in memory at most (the rest wait on disk)."""
    return max(lookahead // SHARE, 4 * concurrency)


def host_key(url: str) -> str:
    """The host an item is scheduled by: ``scheme://host[:port]`` (lower case)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class _Queued:
    __slots__ = ("item", "stored")

    def __init__(self, item: Item, stored: StoredObject | None) -> None:
        self.item = item
        self.stored = stored


async def run_hosts(
    pages: AsyncIterable[list[Item]],
    *,
    fetcher: Fetcher,
    store: ObjectStore,
    concurrency: int,
    breaker: Breaker,
    lookahead: int,
    executor: Executor | None = None,
    known: Known | None = None,
    on_record: OnRecord | None = None,
    refresh: bool = False,
    spill_dir: str | None = None,
) -> None:
    """Fetch and store every item of `pages`, each host's items in their own queue.

    `fetcher` sets the limits (see the module's description): its gates' ceiling is the
    per-host cap (`imgflow.engine.fetch.gates`), its pool the cap in all. Each host has up to twice
    `concurrency` workers, so its fetch slots stay busy while its images are stored. Every
    record goes to `on_record` as it finishes; `known(page)` gives a page's stored items
    (skipped, or revalidated with `refresh`), asked as they enter a host's queue. A host's
    items past its share wait in a temporary file in `spill_dir` (default: the system's).
    """
    queues: dict[str, deque[_Queued]] = {}
    spills: dict[str, Spill] = {}
    workers: dict[str, int] = {}
    queued = 0
    room = asyncio.Event()
    room.set()
    lane_size = 2 * concurrency
    share = host_share(lookahead, concurrency)

    def finish(record: ResultRecord) -> None:
        if on_record is not None:
            on_record(record)

    def enqueue(queue: deque[_Queued], items: list[Item], stored: Stored) -> None:
        nonlocal queued
        for item in items:
            queue.append(_Queued(item, None if stored is None else stored.get(item.url)))
        queued += len(items)

    def refill(host: str, queue: deque[_Queued]) -> None:
        """Bring the host's items back from disk when its queue runs low."""
        spill = spills.get(host)
        if spill is not None and len(queue) <= share // 2:
            items = spill.take(share - len(queue))
            enqueue(queue, items, known(items) if known is not None else None)
            if not spill.count:
                del spills[host]
                spill.close()

    async def worker(host: str, queue: deque[_Queued]) -> None:
        nonlocal queued
        task = asyncio.current_task()
        try:
            while queue:
                if task is not None and task.cancelling():
                    # a cancel an item's fetch ended as its own failure (3.11's timeouts
                    # may): the run is stopping, its lane must not go on to the next items
                    raise asyncio.CancelledError
                refill(host, queue)
                entry = queue.popleft()
                queued -= 1
                if queued < lookahead:
                    room.set()
                item = entry.item
                pause = breaker.paused(host)
                if pause is not None:
                    finish(failed_record(item, breaker.skip(pause, item.url)))
                    continue
                record = await process_item(
                    item,
                    fetcher=fetcher,
                    store=store,
                    executor=executor,
                    known=None if entry.stored is None else {item.url: entry.stored},
                    refresh=refresh,
                )
                breaker.record(host, record.failure_kind)
                finish(record)
        finally:
            workers[host] -= 1
            if not workers[host] and not queue:
                del workers[host]
                queues.pop(host, None)

    try:
        async with asyncio.TaskGroup() as group:
            async for page in pages:
                held: dict[str, list[Item]] = {}
                for item in page:
                    host = host_key(item.url)
                    pause = breaker.paused(host)
                    if pause is not None:
                        finish(failed_record(item, breaker.skip(pause, item.url)))
                        continue
                    queue = queues.get(host)
                    if queue is None:
                        queue = queues[host] = deque()
                    spill = spills.get(host)
                    if spill is None and len(queue) + len(held.get(host, ())) >= share:
                        spill = spills[host] = Spill(spill_dir)
                    if spill is not None:  # its share is held: the rest waits on disk
                        spill.put(item)
                    else:
                        held.setdefault(host, []).append(item)
                stored = known([i for items in held.values() for i in items]) if known else None
                for host, items in held.items():
                    queue = queues[host]
                    enqueue(queue, items, stored)
                    running = workers.get(host, 0)
                    while running < lane_size and running < len(queue):
                        running += 1
                        group.create_task(worker(host, queue))
                    workers[host] = running
                await asyncio.sleep(0)  # the lanes start while the reader reads on
                while queued >= lookahead:
                    room.clear()
                    await room.wait()
    finally:
        for spill in spills.values():
            spill.close()
