"""Retry an execution: a new execution of just the paths that failed in it.

The failed paths are read from the execution's own objects: the manifest (every path of
every batch) and the batches' result objects. A path counts as failed when its record is
failed, or when its batch wrote no record for it (a lost batch, a Map that failed). The
new execution's download step skips what the index holds, so an image stored since (by
another run) is not fetched again. The retry is linked to its parent by its execution
input and its name (see imgflow.aws.job).

A job of full URLs (``urls``) is retried as one: its failed items, with their metadata, in a
new ``urls`` body (entries the plan step rejected are not URLs, and are left out).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from imgflow.aws.client import Aws, NotFoundError, aws_errors
from imgflow.aws.job import (
    RUNNING,
    Started,
    execution_arn_for,
    job_body,
    start_job,
    urls_job_body,
)
from imgflow.aws.runtime.jobs import BatchSpec, get_json, iter_results, manifest_key
from imgflow.aws.runtime.plan import base_url_of
from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.errors import UsageError


@dataclass(frozen=True)
class FailedPaths:
    """What a retry of one execution needs to know."""

    name: str
    base_url: str | None  # None for a job of full URLs
    concurrency: int
    items: list[Item]

    @property
    def paths(self) -> list[str]:
        """The failed items' names: resource paths (or, for a job of URLs, the URLs)."""
        return [item.name for item in self.items]


def execution_arn_of(state_machine_arn: str, target: str) -> str:
    """An execution ARN as given, or the ARN of the execution named `target`."""
    return target if target.startswith("arn:") else execution_arn_for(state_machine_arn, target)


def _describe(aws: Aws, execution_arn: str) -> dict[str, object]:
    if ":execution:" not in execution_arn:
        raise UsageError(f"not an execution ARN: {execution_arn!r}")
    try:
        with aws_errors("states:DescribeExecution"):
            return dict(aws.stepfunctions().describe_execution(executionArn=execution_arn))
    except NotFoundError:
        raise UsageError(f"no such execution: {execution_arn}") from None


def _failed_in(spec: BatchSpec, records: list[ResultRecord] | None) -> Iterator[Item]:
    """The items of `spec` that failed or have no record (a record's path is its item's
    name: the resource path, or the URL of an item of a urls job)."""
    if records is None:
        yield from spec.items
        return
    recorded = {r.path for r in records}
    failed = {r.path for r in records if r.outcome is Outcome.FAILED}
    yield from (i for i in spec.items if i.name in failed or i.name not in recorded)


def failed_paths(aws: Aws, bucket: str, execution_arn: str) -> FailedPaths:
    """The paths that failed in a finished execution, in input order."""
    execution = _describe(aws, execution_arn)
    name = str(execution["name"])
    if execution["status"] == RUNNING:
        raise UsageError(f"execution {name} is still running: retry it once it has ended")
    s3 = aws.s3()
    try:
        manifest = get_json(s3, bucket, manifest_key(name))
    except NotFoundError:
        cause = execution.get("cause") or execution["status"]
        raise UsageError(
            f"execution {name} ended before its job was planned ({cause}): nothing to retry"
        ) from None
    specs = [BatchSpec.from_json(entry) for entry in manifest]
    items: list[Item] = []
    found = iter_results(s3, bucket, name)  # in batch order, streamed
    current = next(found, None)
    for spec in specs:
        while current is not None and current[0] < spec.batch:
            current = next(found, None)
        records = current[1] if current is not None and current[0] == spec.batch else None
        items.extend(_failed_in(spec, records))
    base_url = base_url_of(s3, bucket, json.loads(str(execution["input"])))
    concurrency = specs[0].concurrency if specs else 1
    if base_url is None:  # a rejected entry (no key) is not a URL to retry
        return FailedPaths(name, None, concurrency, [i for i in items if i.key])
    return FailedPaths(name, base_url, concurrency, items)


def start_retry(
    aws: Aws, bucket: str, state_machine_arn: str, failed: FailedPaths, batch_size: int
) -> Started:
    """Start the retry of `failed.name` over its failed paths."""
    if failed.base_url is None:
        body = urls_job_body(failed.items, failed.concurrency)
    else:
        body = job_body(failed.base_url, failed.paths, failed.concurrency)
    return start_job(aws, bucket, state_machine_arn, body, batch_size, parent=failed.name)
