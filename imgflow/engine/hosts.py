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

The reader stays ahead of the fetches by at most `lookahead` items (memory stays flat
whatever the table's size). The circuit breaker (`imgflow.engine.breaker`) hears every
record; a paused host's queued and later items fail at once.
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

Known = Callable[[list[Item]], Mapping[str, StoredObject] | None]


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
) -> None:
    """Fetch and store every item of `pages`, each host's items in their own queue.

    `fetcher` sets the limits (see the module's description): its gates' ceiling is the
    per-host cap (`imgflow.engine.fetch.gates`), its pool the cap in all. Each host has up to twice
    `concurrency` workers, so its fetch slots stay busy while its images are stored. Every
    record goes to `on_record` as it finishes; `known(page)` gives a page's stored items
    (skipped, or revalidated with `refresh`).
    """
    queues: dict[str, deque[_Queued]] = {}
    workers: dict[str, int] = {}
    queued = 0
    room = asyncio.Event()
    room.set()
    lane_size = 2 * concurrency

    def finish(record: ResultRecord) -> None:
        if on_record is not None:
            on_record(record)

    async def worker(host: str, queue: deque[_Queued]) -> None:
        nonlocal queued
        try:
            while queue:
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

    async with asyncio.TaskGroup() as group:
        async for page in pages:
            stored = known(page) if known is not None else None
            for item in page:
                host = host_key(item.url)
                pause = breaker.paused(host)
                if pause is not None:
                    finish(failed_record(item, breaker.skip(pause, item.url)))
                    continue
                queue = queues.get(host)
                if queue is None:
                    queue = queues[host] = deque()
                queue.append(_Queued(item, None if stored is None else stored.get(item.url)))
                queued += 1
                running = workers.get(host, 0)
                if running < lane_size and running < len(queue):
                    workers[host] = running + 1
                    group.create_task(worker(host, queue))
            while queued >= lookahead:
                room.clear()
                await room.wait()
