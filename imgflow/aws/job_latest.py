"""An execution with its retries: the latest outcome of each image of the job.

`imgflow retry` starts a new execution over the failed images of an execution (named
``<root>--retry-...``, its input naming its parent). `imgflow status` of the first execution,
and `imgflow run` of the same job again, show the job as it is now: each image's record from
the newest execution of the retry chain that has one, the counts over those records, and
the newest retry's state. Without retries the execution is shown as it is.

    with_retries(aws, bucket, state_machine_arn, status)   the merged JobStatus

Finding the retries costs one ListExecutions page per 1,000 executions of the state machine
and one DescribeExecution per retry of the same job (their inputs name their parents).
Merging holds the retries' records in memory (the images that failed, not the job), and
streams the first execution's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from imgflow.aws.client import Aws, aws_errors
from imgflow.aws.job import NAME_SEPARATOR, PARENT_FIELD, JobStatus, job_status
from imgflow.engine.records import ResultRecord, Summary

RETRY_KIND = "retry"


def retries_of(aws: Aws, state_machine_arn: str, name: str) -> list[str]:
    """The ARNs of the retries of execution `name` (and of their retries), oldest first."""
    prefix = name.split(NAME_SEPARATOR, 1)[0] + f"{NAME_SEPARATOR}{RETRY_KIND}-"
    sfn = aws.stepfunctions()
    candidates: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        with aws_errors("states:ListExecutions"):
            page = sfn.list_executions(**kwargs)
        candidates.extend(dict(e) for e in page["executions"] if e["name"].startswith(prefix))
        token = page.get("nextToken")
        if not token:
            break
    candidates.sort(key=lambda e: (e["startDate"], e["name"]))
    chain = {name}
    found: list[str] = []
    for candidate in candidates:
        with aws_errors("states:DescribeExecution"):
            execution = sfn.describe_execution(executionArn=candidate["executionArn"])
        if _parent(execution.get("input")) in chain:
            chain.add(str(execution["name"]))
            found.append(str(execution["executionArn"]))
    return found


def _parent(text: str | None) -> str | None:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return None
    parent = data.get(PARENT_FIELD) if isinstance(data, dict) else None
    return str(parent) if parent else None


@dataclass(frozen=True)
class LatestRecords:
    """The first execution's records, each replaced by its newest retry's record if any."""

    first: Iterable[ResultRecord]
    retries: tuple[Iterable[ResultRecord], ...]  # oldest first

    def __iter__(self) -> Iterator[ResultRecord]:
        newer: dict[str, ResultRecord] = {}
        for records in self.retries:
            newer.update((record.url, record) for record in records)
        for record in self.first:
            yield newer.pop(record.url, record)
        yield from newer.values()  # (a retry's image the first execution has no record of)


def with_retries(aws: Aws, bucket: str, state_machine_arn: str, status: JobStatus) -> JobStatus:
    """`status` as the job is now: its retries' newer records over its own, their counts,
    the newest retry's state. `status` itself when it has no retry (or still runs)."""
    if status.running:
        return status
    arns = retries_of(aws, state_machine_arn, status.job_id)
    if not arns:
        return status
    retries = [job_status(aws, bucket, arn) for arn in arns]
    newest = retries[-1]
    records = LatestRecords(status.records, tuple(r.records for r in retries))
    summary = Summary()
    for record in records:
        summary = summary.add(record.outcome)
    final = {**newest.final, "duplicates": status.duplicates} if newest.final else {}
    return replace(
        status,
        status=newest.status,
        error=newest.error,
        cause=newest.cause,
        records=records,
        summary=summary,
        batches_done=status.batches_done + sum(r.batches_done for r in retries),
        final=final,
        retries=tuple(r.job_id for r in retries),
    )
