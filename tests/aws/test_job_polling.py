"""Following a job stays cheap: a poll reads only result objects it has not read before.

moto here does not execute the state machine, so the execution stays RUNNING until the test
stops it; the test writes the result objects the download Lambda would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from imgflow.aws.client import Aws, connect
from imgflow.aws.job import JobWatch, job_status, wait_for_job
from imgflow.aws.runtime.jobs import put_json, summary_key, write_results
from imgflow.documents.run import json_document
from imgflow.engine.records import Outcome, ResultRecord

BUCKET = "polling-images"
JOB = "job-0123456789abcdef"


@pytest.fixture
def idle_aws(aws_env: None) -> Iterator[Aws]:
    # Not executing definitions: an execution stays RUNNING until stopped. Say so explicitly,
    # as the session's moto server turns execution on for the whole process.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        aws = connect(region="us-east-1")
        aws.s3().create_bucket(Bucket=BUCKET)
        yield aws


@pytest.fixture
def execution_arn(idle_aws: Aws) -> str:
    sfn = idle_aws.stepfunctions()
    machine = sfn.create_state_machine(
        name="polling",
        definition=json.dumps(
            {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/polling",
    )
    started = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=JOB)
    return started["executionArn"]


def _records(batch: int, failed: int = 0) -> list[ResultRecord]:
    records = []
    for i in range(3):
        outcome = Outcome.FAILED if i < failed else Outcome.STORED
        path = f"b{batch}/{i}.gif"
        records.append(ResultRecord(f"https://example.com/{path}", path, outcome, 200))
    return records


def _write_batch(aws: Aws, batch: int, failed: int = 0) -> None:
    write_results(aws.s3(), BUCKET, JOB, batch, _records(batch, failed))


def _calls(aws: Aws) -> list[tuple[str, str]]:
    """(operation, request path) of every call made through `aws` from now on."""
    calls: list[tuple[str, str]] = []

    def record(operation: str, params: dict[str, Any]) -> None:
        calls.append((operation, str(params.get("url_path", ""))))

    aws.on_call(record)
    return calls


def _gets(calls: list[tuple[str, str]]) -> list[str]:
    keys = [key.rsplit("/", 1)[-1] for op, key in calls if op == "GetObject"]
    calls.clear()
    return keys


def test_a_poll_reads_only_result_objects_it_has_not_read(
    idle_aws: Aws, execution_arn: str
) -> None:
    watch = JobWatch(idle_aws, BUCKET, execution_arn)
    calls = _calls(idle_aws)
    _write_batch(idle_aws, 0)
    _write_batch(idle_aws, 1, failed=1)
    calls.clear()

    first = watch.poll()
    assert first.running and first.batches_done == 2
    assert (first.summary.total, first.summary.failed) == (6, 1)
    assert sorted(_gets(calls)) == ["000000.json", "000001.json"]  # read by a few threads

    _write_batch(idle_aws, 2, failed=2)
    calls.clear()
    second = watch.poll()
    assert second.batches_done == 3
    assert (second.summary.total, second.summary.stored, second.summary.failed) == (9, 6, 3)
    assert _gets(calls) == ["000002.json"]  # batches 0 and 1 are not read again

    third = watch.poll()
    assert third.summary == second.summary
    assert [op for op, _ in calls] == ["DescribeExecution", "ListObjectsV2"]  # a whole poll
    assert _gets(calls) == []

    # The records are read only when they are iterated, and then in batch order.
    assert [r.path for r in third.records] == [r.path for b in range(3) for r in _records(b)]
    assert sorted(_gets(calls)) == ["000000.json", "000001.json", "000002.json"]


def test_a_finished_job_takes_its_counts_from_the_summary_and_streams_its_records(
    idle_aws: Aws, execution_arn: str
) -> None:
    for batch in range(3):
        _write_batch(idle_aws, batch, failed=batch)
    counts = {"total": 9, "stored": 6, "skipped": 0, "failed": 3, "duplicates": 1}
    put_json(idle_aws.s3(), BUCKET, summary_key(JOB), counts)
    idle_aws.stepfunctions().stop_execution(executionArn=execution_arn, cause="stopped")
    calls = _calls(idle_aws)
    updates: list[int] = []

    status = wait_for_job(idle_aws, BUCKET, execution_arn, lambda s: updates.append(s.batches_done))
    assert updates == [3] and status.status == "ABORTED" and status.duplicates == 1
    assert status.summary.to_json() == {k: v for k, v in counts.items() if k != "duplicates"}
    assert _gets(calls) == ["summary.json"]  # no result object read to follow the job

    document = json_document(status.job_id, "aws", status.summary, status.records)
    assert len(document["results"]) == 9
    assert len(_gets(calls)) == 3
    # the stream can be read again (the table and the JSON each iterate it once)
    assert [r.url for r in status.records] == [r["url"] for r in document["results"]]


def test_an_execution_ended_without_a_summary_is_counted_from_its_records(
    idle_aws: Aws, execution_arn: str
) -> None:
    _write_batch(idle_aws, 0, failed=3)
    idle_aws.stepfunctions().stop_execution(executionArn=execution_arn)
    status = job_status(idle_aws, BUCKET, execution_arn)
    assert not status.running and status.final == {}
    assert (status.summary.total, status.summary.failed) == (3, 3)
