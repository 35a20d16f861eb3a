"""Run one batch: fetch each item, store it, and return one result record per item."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from imgflow.engine import loop, messages
from imgflow.engine.body import StoreError, StoreSink
from imgflow.engine.failures import FailureKind
from imgflow.engine.fetch import Fetcher, Guard
from imgflow.engine.guard import AddressCheck
from imgflow.engine.outcome import (
    Excluded,
    Fetched,
    FetchFailure,
    NotModified,
    no_space,
    store_failure,
)
from imgflow.engine.plan import Item
from imgflow.engine.ports import NO_VALIDATORS, ObjectStore, StoredObject
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.engine.robots import RobotsCache
from imgflow.engine.settings import FetchConfig

OnRecord = Callable[[ResultRecord], None]


def skipped_record(item: Item, known: StoredObject) -> ResultRecord:
    """The record of an item already stored by an earlier run."""
    return ResultRecord(
        url=item.url,
        path=item.name,
        outcome=Outcome.SKIPPED,
        key=known.key,
        bytes=known.bytes,
        sha256=known.sha256,
        content_type=known.content_type,
        etag=known.validators.etag,
        last_modified=known.validators.last_modified,
    )


def unchanged_record(item: Item, known: StoredObject, confirmed: NotModified) -> ResultRecord:
    """The record of a stored item whose version the server confirmed (304)."""
    return dataclasses.replace(
        skipped_record(item, known),
        outcome=Outcome.UNCHANGED,
        status_code=confirmed.status_code,
        attempts=confirmed.attempts,
        etag=confirmed.validators.etag,
        last_modified=confirmed.validators.last_modified,
    )


def failed_record(item: Item, failure: FetchFailure) -> ResultRecord:
    """The record of an item that could not be fetched or stored."""
    return ResultRecord(
        url=item.url,
        path=item.name,
        outcome=Outcome.FAILED,
        status_code=failure.status_code,
        error=failure.message,
        attempts=failure.attempts,
        failure_kind=failure.kind,
    )


def excluded_record(item: Item, excluded: Excluded) -> ResultRecord:
    """The record of an item its site asked not to fetch or keep: nothing was stored."""
    return ResultRecord(
        url=item.url,
        path=item.name,
        outcome=Outcome.EXCLUDED,
        status_code=excluded.status_code,
        error=excluded.message,
        attempts=excluded.attempts,
    )


async def _commit(item: Item, fetched: Fetched, outcome: Outcome, key: str) -> ResultRecord:
    """Publish a fetched body at `key` (aborted if anything, even a cancel, stops it)."""
    body = fetched.body
    try:
        digest = await body.commit(fetched.content_type)
    except BaseException:
        await body.abort()
        raise
    return ResultRecord(
        url=item.url,
        path=item.name,
        outcome=outcome,
        status_code=fetched.status_code,
        key=key,
        bytes=body.size,
        sha256=digest,
        content_type=fetched.content_type,
        attempts=fetched.attempts,
        etag=fetched.validators.etag,
        last_modified=fetched.validators.last_modified,
        width=fetched.size[0] if fetched.size else None,
        height=fetched.size[1] if fetched.size else None,
    )


async def process_item(
    item: Item,
    *,
    fetcher: Fetcher,
    store: ObjectStore,
    executor: Executor | None,
    known: Mapping[str, StoredObject] | None = None,
    slots: Sequence[asyncio.Semaphore] = (),
    refresh: bool = False,
) -> ResultRecord:
    """Fetch and store one item; every outcome, even an unexpected error, is a record.

    A `known` item is skipped, or with `refresh` revalidated: a conditional request
    (its stored validators) keeps it on a 304 and replaces it with a 200's body.
    The body streams into the store as it arrives (see imgflow.engine.body). The fetch
    holds one of each of `slots` (the limits on requests in flight); the commit does not,
    so another request can go out while this image is flushed and published.
    """
    stored = known.get(item.url) if known is not None else None
    if stored is not None and not refresh:
        return skipped_record(item, stored)
    validators = stored.validators if stored is not None else NO_VALIDATORS
    key = item.key if stored is None else stored.key  # an update replaces the stored file
    attempts = 0
    try:
        held: list[asyncio.Semaphore] = []
        try:
            for slot in slots:
                await slot.acquire()
                held.append(slot)
            result = await fetcher.fetch(
                item.url, lambda: StoreSink(store, key, executor), validators
            )
        finally:
            for slot in held:
                slot.release()
        attempts = result.attempts
        if isinstance(result, NotModified):
            assert stored is not None  # only a conditional request gets one
            return unchanged_record(item, stored, result)
        if isinstance(result, Excluded):
            return excluded_record(item, result)
        if not isinstance(result, Fetched):
            return failed_record(item, result)
        outcome = Outcome.STORED if stored is None else Outcome.UPDATED
        try:
            return await _commit(item, result, outcome, key)
        except StoreError as exc:
            return failed_record(item, store_failure(item.url, exc, result.status_code, attempts))
    except Exception as exc:  # one bad item must never lose the batch's other records
        message = messages.failure(messages.BATCH_FAILED, item.url, f"{type(exc).__name__}: {exc}")
        kind = FailureKind.NO_SPACE if no_space(exc) else FailureKind.BATCH_FAILED
        return failed_record(item, FetchFailure(kind, message, None, attempts))


async def run_batch(
    items: Sequence[Item],
    *,
    fetcher: Fetcher,
    store: ObjectStore,
    concurrency: int,
    executor: Executor | None = None,
    known: Mapping[str, StoredObject] | None = None,
    on_record: OnRecord | None = None,
    shared: asyncio.Semaphore | None = None,
    on_tail: Callable[[], None] | None = None,
    refresh: bool = False,
    may_start: Callable[[], bool] | None = None,
) -> list[ResultRecord]:
    """One record per item, in item order, with at most `concurrency` fetches in flight.

    `may_start`, when given, is asked before each item is started: once it says no, no
    further item starts, and the records cover only the items that were (in item order).

    `known` items are skipped, or revalidated with `refresh` (see `process_item`).
    `shared`, when given, also limits fetches across every batch that holds it. Twice as
    many workers as fetch slots keep the slots busy while images are being stored.
    `on_tail` is called once, as soon as fewer than `concurrency` items are left
    unfinished (all of them already fetching): from then on the batch cannot fill its
    fetch slots, and a runner can open the next batch to use them.
    """
    results: list[ResultRecord | None] = [None] * len(items)
    queue = iter(range(len(items)))
    own = asyncio.Semaphore(concurrency)
    slots = (own,) if shared is None else (own, shared)

    unfinished = len(items)
    if unfinished < concurrency and on_tail is not None:
        on_tail()

    async def worker() -> None:
        nonlocal unfinished
        for index in queue:
            if may_start is not None and not may_start():
                return
            record = await process_item(
                items[index],
                fetcher=fetcher,
                store=store,
                executor=executor,
                known=known,
                slots=slots,
                refresh=refresh,
            )
            results[index] = record
            unfinished -= 1
            if unfinished == concurrency - 1 and on_tail is not None:
                on_tail()
            if on_record is not None:
                on_record(record)

    await asyncio.gather(*(worker() for _ in range(min(2 * concurrency, len(items)))))
    return [r for r in results if r is not None]


def run_batch_blocking(
    items: Sequence[Item],
    *,
    settings: FetchConfig,
    store: ObjectStore,
    concurrency: int,
    guard: Guard | None = None,
    address_check: AddressCheck | None = None,
    known: Mapping[str, StoredObject] | None = None,
    may_start: Callable[[], bool] | None = None,
    robots_cache: RobotsCache | None = None,
    on_record: OnRecord | None = None,
) -> list[ResultRecord]:
    """`run_batch` with its own event loop, fetcher and store threads (for the Lambda);
    `robots_cache`: robots.txt answers kept beyond this batch (the job's, on aws)."""

    async def main() -> list[ResultRecord]:
        with ThreadPoolExecutor(max_workers=min(32, concurrency)) as pool:
            async with Fetcher(
                settings,
                max_connections=concurrency,
                guard=guard,
                address_check=address_check,
                robots_cache=robots_cache,
            ) as fetcher:
                return await run_batch(
                    items,
                    fetcher=fetcher,
                    store=store,
                    concurrency=concurrency,
                    executor=pool,
                    known=known,
                    may_start=may_start,
                    on_record=on_record,
                )

    return loop.run(main())
