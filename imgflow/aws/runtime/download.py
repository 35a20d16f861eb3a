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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from imgflow.aws.client import Aws
from imgflow.aws.runtime.index import DynamoIndex
from imgflow.aws.runtime.jobs import BatchSpec, write_results
from imgflow.aws.runtime.robots_cache import S3RobotsCache
from imgflow.aws.runtime.settings import LambdaSettings
from imgflow.aws.runtime.store import S3Store
from imgflow.engine import messages
from imgflow.engine.batch import failed_record, run_batch_blocking
from imgflow.engine.failures import FailureKind
from imgflow.engine.guard import make_address_check, make_guard
from imgflow.engine.outcome import FetchFailure
from imgflow.engine.plan import Item
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


def download_batch(
    aws: Aws, settings: LambdaSettings, spec: BatchSpec, clock: Clock | None = None
) -> dict[str, Any]:
    """Fetch and store one batch (or part) within the invocation's time; index and record
    what finished; the items not started come back as ``"rest"``."""
    items = spec.items
    store = S3Store(aws.s3(), settings.bucket, settings.prefix)
    index = DynamoIndex(aws.dynamodb(), settings.table, settings.bucket)
    known = index.lookup([item.url for item in items])
    guarded = not settings.allow_private_targets
    records = run_batch_blocking(
        items,
        settings=settings.fetch,
        store=store,
        concurrency=spec.concurrency,
        guard=make_guard() if guarded else None,
        address_check=make_address_check() if guarded else None,
        known=known,
        may_start=time_watch(settings, clock),
        robots_cache=S3RobotsCache(aws.s3(), settings.bucket, spec.job_id),
    )
    done = items[: len(records)]  # records come in item order; the rest never started
    rest = items[len(records) :]
    records = [_with_object_key(record, store) for record in records]
    refused = index.record(spec.job_id, done, records)
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
