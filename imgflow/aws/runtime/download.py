"""The download step for one batch: fetch, store in S3, index, write the batch's records.

Returns only counts; the records go to jobs/<job-id>/results/<batch>.json. When the state
machine catches a crash of this step it calls `record_crash`, which writes the batch's
records as failed with the error, so no batch goes unreported.

Lambda stops an invocation at the function's timeout (``Sandbox.Timedout``), whatever it is
doing. The batch therefore watches the time left (`context.get_remaining_time_in_millis()`):
no request starts unless the longest one the fetch settings allow (`fetch.total_timeout`)
plus `MARGIN_SECONDS` (storing, the index rows and the results object) still fits. What
finished is stored, indexed and recorded together; the items not started come back as
``"rest"`` (null when none), a batch part the state machine runs again in a new invocation (up to
`MAX_PARTS`; an invocation that could start nothing fails its rest at once, as the
function's timeout is then too short for even one request).

A batch of a lane (a urls job: `plan.plan_lanes`) also hands back ``"next"``: the reference
of its lane's next batch, once the batch is done (null after the lane's last batch, and
for a batch of the seed job). The state machine runs it next, in the same child, so one
host's batches never run side by side. Each record carries its item's metadata.

robots.txt is read once per host per job: the batch's engine keeps each answer it reads in
the job's S3 robots cache (runtime/robots_cache.py), where the job's later batches find it.

With `output.layout: webdataset` (IMGFLOW_LAYOUT) the batch's images go into one shard,
`shards/<job-id>/<NNNNN>.tar` (runtime/shards.py), completed before the index rows are
written (each row's key is the shard, its member the image's); a failure of the shard
fails the batch's stored images ("Store failed"), with no rows. An image the index
places in this very shard (a first attempt of this batch that got as far as its rows) is
copied from that shard into the one replacing it (skipped, not fetched), or fetched again
when that shard cannot be read, so the new shard holds it too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from imgflow.aws.client import Aws
from imgflow.aws.runtime.index import DynamoIndex
from imgflow.aws.runtime.jobs import BatchSpec, write_results
from imgflow.aws.runtime.robots_cache import S3RobotsCache
from imgflow.aws.runtime.settings import LambdaSettings
from imgflow.aws.runtime.shards import BatchShard, shard_stem
from imgflow.aws.runtime.store import S3Store
from imgflow.engine import messages
from imgflow.engine.batch import failed_record, run_batch_blocking
from imgflow.engine.failures import FailureKind
from imgflow.engine.guard import make_address_check, make_guard
from imgflow.engine.outcome import FetchFailure, store_failure
from imgflow.engine.plan import Item
from imgflow.engine.ports import StoredObject
from imgflow.engine.records import Outcome, ResultRecord, Summary

MAX_DETAIL = 300
MARGIN_SECONDS = 3.0
MAX_PARTS = 50


class Clock(Protocol):
    """The part of Lambda's context object the watch reads."""

    def get_remaining_time_in_millis(self) -> int: ...


def counts(spec: BatchSpec, records: Sequence[ResultRecord]) -> dict[str, Any]:
    """The small result a download invocation returns to the state machine."""
    summary = Summary()
    for record in records:
        summary = summary.add(record.outcome)
    return {"jobId": spec.job_id, "batch": spec.batch, **summary.to_json()}


def _with_object_key(record: ResultRecord, store: S3Store) -> ResultRecord:
    if record.outcome is Outcome.STORED and record.key is not None:
        return dataclasses.replace(record, key=store.object_key(record.key))
    return record


def time_watch(settings: LambdaSettings, clock: Clock | None) -> Callable[[], bool] | None:
    """Whether another request may start: the longest request plus the margin still fits."""
    if clock is None:
        return None
    needed = (settings.fetch.total_timeout + MARGIN_SECONDS) * 1000
    return lambda: clock.get_remaining_time_in_millis() >= needed


def _unindexed(
    items: Sequence[Item], records: Sequence[ResultRecord], refused: set[str]
) -> list[ResultRecord]:
    """`records` with those whose index rows DynamoDB refused failed (only those)."""
    detail = "DynamoDB refused its index row"
    kept = []
    for item, record in zip(items, records, strict=True):
        if record.url in refused:
            message = messages.failure(messages.BATCH_FAILED, item.url, detail)
            failure = FetchFailure(FailureKind.BATCH_FAILED, message, None, record.attempts)
            record = failed_record(item, failure)
        kept.append(record)
    return kept


def _not_started(spec: BatchSpec, rest: Sequence[Item], detail: str) -> list[ResultRecord]:
    return lost_records(dataclasses.replace(spec, items=tuple(rest)), detail)


def _in_shard(record: ResultRecord, shard: BatchShard, members: Mapping[str, str]) -> ResultRecord:
    """A stored record once its shard is complete: its key the shard's; failed when its
    image did not go in."""
    if not record.outcome.wrote:
        return record
    if record.url in members:
        return dataclasses.replace(record, key=shard.key)
    return _store_failed(record, OSError(f"its image did not go into shard {shard.key}"))


def _store_failed(record: ResultRecord, error: OSError) -> ResultRecord:
    """A stored record failed after all: "Store failed" with `error`."""
    item = Item(record.url, record.key or "", path=record.path)
    return failed_record(
        item, store_failure(record.url, error, record.status_code, record.attempts)
    )


def _sharded(
    shard: BatchShard, records: Sequence[ResultRecord], started: float
) -> tuple[list[ResultRecord], dict[str, str]]:
    """Complete the batch's shard and its sidecars: the records (their stored ones now in
    the shard, or failed with the shard) and the member of each URL."""
    try:
        members = shard.finish()
    except OSError as exc:
        error = OSError(f"shard {shard.key}: {exc}")
        return [_store_failed(r, error) if r.outcome.wrote else r for r in records], {}
    kept = [_in_shard(record, shard, members) for record in records]
    if members:
        shard.write_sidecars(kept, time.monotonic() - started)
    return kept, members


def _fetch(
    aws: Aws,
    settings: LambdaSettings,
    spec: BatchSpec,
    store: S3Store | BatchShard,
    known: Mapping[str, StoredObject],
    clock: Clock | None,
) -> list[ResultRecord]:
    guarded = not settings.allow_private_targets
    return run_batch_blocking(
        spec.items,
        settings=settings.fetch,
        store=store,
        concurrency=spec.concurrency,
        guard=make_guard() if guarded else None,
        address_check=make_address_check() if guarded else None,
        known=known,
        may_start=time_watch(settings, clock),
        robots_cache=S3RobotsCache(aws.s3(), settings.bucket, spec.job_id),
        on_record=store.add if isinstance(store, BatchShard) else None,
    )


def download_batch(
    aws: Aws, settings: LambdaSettings, spec: BatchSpec, clock: Clock | None = None
) -> dict[str, Any]:
    """Fetch and store one batch (or part) within the invocation's time; index and record
    what finished; the items not started come back as ``"rest"``."""
    items = spec.items
    index = DynamoIndex(aws.dynamodb(), settings.table, settings.bucket)
    known = index.lookup([item.url for item in items])
    members: dict[str, str] = {}
    if settings.layout == "webdataset":
        started = time.monotonic()
        stem = shard_stem(spec.job_id, spec.batch, spec.part)
        shard = BatchShard(aws.s3(), settings.bucket, stem, items)
        own = [url for url, obj in known.items() if obj.key == shard.key]
        carried = shard.carry(own) if own else set()
        known = {url: obj for url, obj in known.items() if obj.key != shard.key or url in carried}
        try:
            records = _fetch(aws, settings, spec, shard, known, clock)
        except BaseException:
            shard.abort()
            raise
        records, members = _sharded(shard, records, started)
    else:
        store = S3Store(aws.s3(), settings.bucket, settings.prefix)
        records = _fetch(aws, settings, spec, store, known, clock)
        records = [_with_object_key(record, store) for record in records]
    done = items[: len(records)]  # records come in item order; the rest never started
    rest = items[len(records) :]
    refused = index.record(spec.job_id, done, records, members)
    if refused:
        records = _unindexed(done, records, refused)
    next_part = None
    if rest and (not records or spec.part + 1 >= MAX_PARTS):
        why = (
            f"not started: the function's timeout leaves less than {settings.fetch.total_timeout:g}"
            f" s (fetch.total_timeout) + {MARGIN_SECONDS:g} s for a request"
            if not records
            else f"not started: the batch ran out of time {MAX_PARTS} times"
        )
        records = [*records, *_not_started(spec, rest, why)]
    elif rest:
        next_part = dataclasses.replace(spec, items=tuple(rest), part=spec.part + 1)
    write_results(aws.s3(), settings.bucket, spec.job_id, spec.batch, records, spec.part, items)
    rest_json = None if next_part is None else next_part.to_json()
    next_batch = spec.next_ref() if next_part is None else None
    return {**counts(spec, records), "rest": rest_json, "next": next_batch}


def crash_detail(error: Any) -> str:
    """A short text of the error the state machine caught (``{"Error", "Cause"}``)."""
    if not isinstance(error, dict):
        return "the batch failed"
    detail = f"{error.get('Error') or 'Error'}: {error.get('Cause') or ''}".strip(" :")
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."


def lost_records(spec: BatchSpec, detail: str) -> list[ResultRecord]:
    """Every item of a batch, failed with `detail`."""
    records = []
    for item in spec.items:
        message = messages.failure(messages.BATCH_FAILED, item.url, detail)
        records.append(
            failed_record(item, FetchFailure(FailureKind.BATCH_FAILED, message, None, 0))
        )
    return records


def record_crash(aws: Aws, settings: LambdaSettings, spec: BatchSpec, error: Any) -> dict[str, Any]:
    """Write the batch's records as failed with the caught error; its lane goes on."""
    records = lost_records(spec, crash_detail(error))
    s3 = aws.s3()
    write_results(s3, settings.bucket, spec.job_id, spec.batch, records, spec.part, spec.items)
    return {**counts(spec, records), "next": spec.next_ref()}
