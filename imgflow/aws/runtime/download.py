"""The download step for one batch: fetch, store in S3, index, write the batch's records.

Returns only counts; the records go to jobs/<job-id>/results/<batch>.json. When the state
machine catches a crash of this step it calls `record_crash`, which writes the batch's
records as failed with the error, so no batch goes unreported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from imgflow.aws.client import Aws
from imgflow.aws.runtime.index import DynamoIndex
from imgflow.aws.runtime.jobs import BatchSpec, write_results
from imgflow.aws.runtime.settings import LambdaSettings
from imgflow.aws.runtime.store import S3Store
from imgflow.engine import messages
from imgflow.engine.batch import failed_record, run_batch_blocking
from imgflow.engine.failures import FailureKind
from imgflow.engine.guard import make_address_check, make_guard
from imgflow.engine.outcome import FetchFailure
from imgflow.engine.records import Outcome, ResultRecord, Summary

MAX_DETAIL = 300


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


def download_batch(aws: Aws, settings: LambdaSettings, spec: BatchSpec) -> dict[str, Any]:
    """Fetch and store one batch; index and record it."""
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
    )
    records = [_with_object_key(record, store) for record in records]
    index.record(spec.job_id, items, records)
    write_results(aws.s3(), settings.bucket, spec.job_id, spec.batch, records)
    return counts(spec, records)


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
    """Write the batch's records as failed with the caught error."""
    records = lost_records(spec, crash_detail(error))
    write_results(aws.s3(), settings.bucket, spec.job_id, spec.batch, records)
    return counts(spec, records)
