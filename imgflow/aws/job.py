"""The aws backend's job driver: start an execution, follow it, collect its records.

    start_job(aws, outputs, body, batch_size)   upload the job to jobs/<job-id>/job.json and
                                                start the execution named <job-id>; the same
                                                job again reports the existing execution
    job_status(aws, bucket, execution_arn)      the execution's state and the records
                                                written so far (works while it runs)
    wait_for_job(aws, bucket, arn, on_update)   poll job_status until the execution ends

The job id is a digest of the job (base URL, paths, concurrency, batch size), so it names
both the execution and the job's folder in the bucket.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from imgflow.aws.client import Aws, AwsError, NotFoundError, aws_errors
from imgflow.aws.lambda_jobs import get_json, iter_results, job_key, put_json, summary_key
from imgflow.engine.records import ResultRecord, Summary
from imgflow.errors import UsageError

RUNNING = "RUNNING"
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Started:
    """An execution of a job: just started, or found already there."""

    execution_arn: str
    job_id: str
    existing: bool


@dataclass(frozen=True)
class JobStatus:
    """An execution's state and the records its batches wrote so far."""

    execution_arn: str
    job_id: str
    status: str
    error: str | None
    cause: str | None
    records: list[ResultRecord]
    summary: Summary
    batches_done: int
    final: dict[str, Any] = field(default_factory=dict)

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


def job_id_for(body: dict[str, Any], batch_size: int) -> str:
    """A name for the job's execution and folder, the same for the same job."""
    text = json.dumps({**body, "batchSize": batch_size}, sort_keys=True, separators=(",", ":"))
    return "job-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution `name` of a state machine."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def _exists(aws: Aws, execution_arn: str) -> bool:
    try:
        with aws_errors("states:DescribeExecution"):
            aws.stepfunctions().describe_execution(executionArn=execution_arn)
    except NotFoundError:
        return False
    return True


def start_job(
    aws: Aws, bucket: str, state_machine_arn: str, body: dict[str, Any], batch_size: int
) -> Started:
    """Upload the job and start its execution (or find the one already started)."""
    job_id = job_id_for(body, batch_size)
    arn = execution_arn_for(state_machine_arn, job_id)
    if _exists(aws, arn):
        return Started(arn, job_id, existing=True)
    key = job_key(job_id)
    put_json(aws.s3(), bucket, key, body)
    execution_input = {"manifest": {"bucket": bucket, "key": key}, "batchSize": batch_size}
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


def job_status(aws: Aws, bucket: str, execution_arn: str) -> JobStatus:
    """The execution's state, and its records so far, in batch order."""
    if not execution_arn.startswith("arn:") or ":execution:" not in execution_arn:
        raise UsageError(f"not an execution ARN: {execution_arn!r}")
    try:
        with aws_errors("states:DescribeExecution"):
            execution = aws.stepfunctions().describe_execution(executionArn=execution_arn)
    except NotFoundError:
        raise UsageError(f"no such execution: {execution_arn}") from None
    job_id = execution["name"]
    records: list[ResultRecord] = []
    batches = 0
    for _, batch in iter_results(aws.s3(), bucket, job_id):
        records.extend(batch)
        batches += 1
    summary = Summary()
    for record in records:
        summary = summary.add(record.outcome)
    final = {} if execution["status"] == RUNNING else _final(aws, bucket, job_id)
    if final:
        summary = Summary(final["total"], final["stored"], final["skipped"], final["failed"])
    return JobStatus(
        execution_arn=execution_arn,
        job_id=job_id,
        status=execution["status"],
        error=execution.get("error"),
        cause=execution.get("cause"),
        records=records,
        summary=summary,
        batches_done=batches,
        final=final,
    )


def wait_for_job(
    aws: Aws,
    bucket: str,
    execution_arn: str,
    on_update: Callable[[JobStatus], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Poll until the execution ends; `on_update` sees every intermediate status."""
    while True:
        status = job_status(aws, bucket, execution_arn)
        if on_update is not None:
            on_update(status)
        if not status.running:
            return status
        sleep(poll_seconds)
