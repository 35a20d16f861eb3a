"""The aws backend's job driver: start an execution, follow it, collect its records.

    start_job(aws, outputs, body, batch_size)   upload the job to jobs/<job-id>/job.json and
                                                start the execution named <job-id>; the same
                                                job again reports the existing execution
                                                (fresh=True starts a new one, named
                                                <job-id>--new-<time>; parent= links a retry)
    job_status(aws, bucket, execution_arn)      the execution's state, counts so far and its
                                                records (works while it runs)
    JobWatch(aws, bucket, execution_arn).poll() the same, for a caller that polls: each poll
                                                reads only the result objects that are new
    wait_for_job(aws, bucket, arn, on_update)   poll until the execution ends
    (job_latest.with_retries: an ended execution with its retries' newer records)

Polling stays cheap at any job size: a poll is one DescribeExecution, a listing of the
results folder (one call per 1,000 batches) and one GetObject per result object not seen
before, for its counts; no records are kept. Once the job is consolidated its counts come
from summary.json. The records themselves are read only when `JobStatus.records` is
iterated (by the renderer, at the end), streamed object by object.

The job id is a digest of the job (base URL, paths, concurrency, batch size), so it names
both the execution and the job's folder in the bucket. A fresh run or a retry of a job gets
a name of its own, ``<root>--<kind>-<UTC time>-<random>``, where <root> is the first
execution's name; a retry's execution input names its parent (``"parent"``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import Aws, AwsError, NotFoundError, aws_errors
from imgflow.aws.runtime.job_lines import put_job
from imgflow.aws.runtime.jobs import (
    get_json,
    job_key,
    read_results,
    result_keys,
    summary_key,
)
from imgflow.engine.plan import Item
from imgflow.engine.records import ResultRecord, Summary
from imgflow.errors import UsageError
from imgflow.sources.job_json import url_entry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RUNNING = "RUNNING"
POLL_SECONDS = 1.0
NAME_SEPARATOR = "--"
PARENT_FIELD = "parent"


@dataclass(frozen=True)
class Started:
    """An execution of a job: just started, or found already there."""

    execution_arn: str
    job_id: str
    existing: bool


@dataclass(frozen=True)
class ResultStream:
    """The records of some result objects, read (in batch order) each time it is iterated."""

    s3: S3Client
    bucket: str
    keys: tuple[str, ...]

    def __iter__(self) -> Iterator[ResultRecord]:
        for _, records in read_results(self.s3, self.bucket, self.keys):
            yield from records


@dataclass(frozen=True)
class JobStatus:
    """An execution's state, its counts, and the records its batches wrote so far."""

    execution_arn: str
    job_id: str
    status: str
    error: str | None
    cause: str | None
    records: Iterable[ResultRecord]
    summary: Summary
    batches_done: int
    final: dict[str, Any] = field(default_factory=dict)
    retries: tuple[str, ...] = ()  # the retries whose newer records it shows (job_latest.py)

    @property
    def running(self) -> bool:
        """True while the execution runs."""
        return self.status == RUNNING

    @property
    def duplicates(self) -> int:
        """Duplicate paths the plan step dropped (known once the job is consolidated)."""
        return int(self.final.get("duplicates", 0))


def job_body(base_url: str, paths: Iterable[str], concurrency: int) -> dict[str, Any]:
    """The original job body."""
    return {"baseUrl": base_url, "resourcePaths": list(paths), "lambdaConcur": concurrency}


def urls_job_body(items: Iterable[Item], concurrency: int) -> dict[str, Any]:
    """A job body of full URLs (``urls``: each a string, or ``{"url", **meta}``)."""
    return {"urls": [url_entry(item) for item in items], "lambdaConcur": concurrency}


def job_id_for(body: dict[str, Any], batch_size: int) -> str:
    """A name for the job's execution and folder, the same for the same job."""
    text = json.dumps({**body, "batchSize": batch_size}, sort_keys=True, separators=(",", ":"))
    return "job-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution `name` of a state machine."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def root_name(name: str) -> str:
    """The name of the first execution of a job, from any of its runs' names."""
    return name.split(NAME_SEPARATOR, 1)[0]


def derived_name(name: str, kind: str) -> str:
    """A new execution name for a fresh run or a retry of the job `name` (at most 80 chars)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    suffix = f"{NAME_SEPARATOR}{kind}-{stamp}-{secrets.token_hex(2)}"
    return root_name(name)[: 80 - len(suffix)] + suffix


def _exists(aws: Aws, execution_arn: str) -> bool:
    try:
        with aws_errors("states:DescribeExecution"):
            aws.stepfunctions().describe_execution(executionArn=execution_arn)
    except NotFoundError:
        return False
    return True


def start_job(
    aws: Aws,
    bucket: str,
    state_machine_arn: str,
    body: dict[str, Any],
    batch_size: int,
    *,
    fresh: bool = False,
    parent: str | None = None,
) -> Started:
    """Upload the job and start its execution (or find the one already started).

    `fresh` starts a new execution of a job submitted before; `parent` (an execution name)
    starts a retry of that execution, linked to it.
    """
    job_id = job_id_for(body, batch_size)
    if parent is not None:
        job_id = derived_name(parent, "retry")
    elif fresh:
        job_id = derived_name(job_id, "new")
    arn = execution_arn_for(state_machine_arn, job_id)
    if parent is None and not fresh and _exists(aws, arn):
        return Started(arn, job_id, existing=True)
    key = job_key(job_id)
    put_job(aws.s3(), bucket, key, body)  # one entry per line: the plan step streams it
    execution_input: dict[str, Any] = {
        "manifest": {"bucket": bucket, "key": key},
        "batchSize": batch_size,
    }
    if parent is not None:
        execution_input[PARENT_FIELD] = parent
    try:
        with aws_errors("states:StartExecution"):
            started = aws.stepfunctions().start_execution(
                stateMachineArn=state_machine_arn, name=job_id, input=json.dumps(execution_input)
            )
    except AwsError as exc:
        if exc.code == "ExecutionAlreadyExists":
            return Started(arn, job_id, existing=True)
        raise
    return Started(started["executionArn"], job_id, existing=False)


def _final(aws: Aws, bucket: str, job_id: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = get_json(aws.s3(), bucket, summary_key(job_id))
    except NotFoundError:
        return {}
    return found


def _counts(records: Iterable[ResultRecord]) -> Summary:
    summary = Summary()
    for record in records:
        summary = summary.add(record.outcome)
    return summary


class JobWatch:
    """Follows one execution; every poll reads only the result objects it has not read yet.

    It keeps counts, never records: its memory stays the size of the set of keys read.
    """

    def __init__(self, aws: Aws, bucket: str, execution_arn: str) -> None:
        if not execution_arn.startswith("arn:") or ":execution:" not in execution_arn:
            raise UsageError(f"not an execution ARN: {execution_arn!r}")
        self._aws = aws
        self._bucket = bucket
        self._arn = execution_arn
        self._read: set[str] = set()
        self._summary = Summary()

    def _describe(self) -> dict[str, Any]:
        try:
            with aws_errors("states:DescribeExecution"):
                return dict(self._aws.stepfunctions().describe_execution(executionArn=self._arn))
        except NotFoundError:
            raise UsageError(f"no such execution: {self._arn}") from None

    def _count_new(self, keys: Iterable[str]) -> Summary:
        """The counts over every key in `keys`, reading only the objects not read before."""
        new = [key for key in keys if key not in self._read]
        for key, (_, records) in zip(
            new, read_results(self._aws.s3(), self._bucket, new), strict=True
        ):
            self._summary = self._summary + _counts(records)
            self._read.add(key)
        return self._summary

    def poll(self) -> JobStatus:
        """The execution's state now, with counts so far and its records (read when iterated)."""
        execution = self._describe()
        job_id = str(execution["name"])
        keys = tuple(result_keys(self._aws.s3(), self._bucket, job_id))
        final = {} if execution["status"] == RUNNING else _final(self._aws, self._bucket, job_id)
        if final:
            summary = Summary(
                final["total"],
                final["stored"],
                final["skipped"],
                final["failed"],
                excluded=final.get("excluded", 0),
            )
        else:
            summary = self._count_new(keys)
        return JobStatus(
            execution_arn=self._arn,
            job_id=job_id,
            status=execution["status"],
            error=execution.get("error"),
            cause=execution.get("cause"),
            records=ResultStream(self._aws.s3(), self._bucket, keys),
            summary=summary,
            batches_done=len(keys),
            final=final,
        )


def job_status(aws: Aws, bucket: str, execution_arn: str) -> JobStatus:
    """The execution's state, its counts so far and its records (streamed, in batch order)."""
    return JobWatch(aws, bucket, execution_arn).poll()


def wait_for_job(
    aws: Aws,
    bucket: str,
    execution_arn: str,
    on_update: Callable[[JobStatus], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Poll until the execution ends; `on_update` sees every intermediate status."""
    watch = JobWatch(aws, bucket, execution_arn)
    while True:
        status = watch.poll()
        if on_update is not None:
            on_update(status)
        if not status.running:
            return status
        sleep(poll_seconds)
