"""A download batch against a slow site, under a Lambda double that enforces the timeout.

Lambda stops an invocation at the function's configured timeout and answers
``Sandbox.Timedout``; moto's in-process Lambda ran to the end (tests/aws/lambda_invoke.py
now stops it). The download handler must watch the time left, stop starting requests in
time, index what it stored and hand the rest back to the state machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_invoke import _call_with_timeout, invocation_counts, patched, reset_counts
from pipeline_env import FLAGS_DIR, Deployed, deploy_pipeline
from sfn_limits import strict_map
from support.faultserver import FaultServer
from support.replies import Delay, Ok

from imgflow.aws.client import Aws
from imgflow.config import from_mapping

GIF = (FLAGS_DIR / "ad" / "ad.gif").read_bytes()
PATHS = [f"img/{n}.gif" for n in range(10)]


class _Fn:
    function_name = "slow"
    timeout = 1


def test_the_double_stops_an_invocation_at_the_timeout() -> None:
    seen: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> str:
        seen.append(context.get_remaining_time_in_millis())
        time.sleep(5)
        return "finished"

    started = time.monotonic()
    answer = _call_with_timeout(handler, {}, _Fn())
    assert time.monotonic() - started < 2
    message = "Task timed out after 1.00 seconds"
    timed_out = {"errorType": "Sandbox.Timedout", "errorMessage": message}
    assert answer == {"error": timed_out}
    assert 0 < seen[0] <= 1000


@pytest.fixture
def slow_site() -> Iterator[FaultServer]:
    with FaultServer() as server:
        for path in PATHS:
            server.set(f"/{path}", Delay(1.0, Ok(GIF)))
        yield server


@pytest.fixture
def pipeline(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    cfg = from_mapping(
        {
            "deployment": "imgflow-slow",
            "aws": {
                "region": "us-east-1",
                "state_dir": str(tmp_path / "deployed"),
                "allow_private_targets": True,
            },
            "lambda": {"timeout": 9},
            "fetch": {"total_timeout": 1.5, "retries": 0},
        },
        env={},
    )
    with patched(), strict_map():
        deployed = deploy_pipeline(aws, cfg)
        reset_counts()
        yield deployed


def _objects(aws: Aws, bucket: str) -> set[str]:
    pages = aws.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="images/")
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _run_to_end(
    aws: Aws, pipeline: Deployed, name: str, body: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """Starts the execution ``name`` with ``body`` and waits (at most ``seconds``) for its end."""
    sfn = aws.stepfunctions()
    arn = sfn.start_execution(
        stateMachineArn=pipeline.state_machine_arn, name=name, input=json.dumps(body)
    )["executionArn"]
    deadline = time.monotonic() + seconds
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.1)
    return dict(execution)


def test_a_slow_batch_stops_in_time_and_its_rest_runs_again(
    aws: Aws, pipeline: Deployed, slow_site: FaultServer
) -> None:
    body = {"baseUrl": slow_site.base_url, "resourcePaths": PATHS, "lambdaConcur": 1}
    execution = _run_to_end(aws, pipeline, "slow", body, seconds=90)
    stored = _objects(aws, pipeline.bucket)
    rows = aws.dynamodb().scan(TableName=pipeline.table)["Items"]
    # No image without its index row, whatever happened to the invocations.
    assert {r["key"]["S"] for r in rows} == stored
    failures = aws.s3().get_object(Bucket=pipeline.bucket, Key="jobs/slow/failures.json")
    assert execution["status"] == "SUCCEEDED", failures["Body"].read()[:600]
    assert len(stored) == len(PATHS)
    fetched = sorted(r.path for r in slow_site.requests if r.path != "/robots.txt")
    assert fetched == sorted(f"/{p}" for p in PATHS)
    assert invocation_counts()["imgflow-slow-download"] >= 2


def test_a_batch_that_times_out_is_retried_once_then_recorded_failed(
    aws: Aws, pipeline: Deployed, slow_site: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download invocation stopped at its timeout answers Sandbox.Timedout (the double, as
    Lambda): the Fetch task retries it once, as the definition says, then records the crash."""
    import lambdas.download as handler_module

    def hangs(*args: Any) -> Any:
        time.sleep(5)  # the double stops it after the 1 s timeout

    monkeypatch.setattr(handler_module, "download_batch", hangs)
    aws.lambda_().update_function_configuration(FunctionName="imgflow-slow-download", Timeout=1)
    body = {"baseUrl": slow_site.base_url, "resourcePaths": PATHS[:2], "lambdaConcur": 1}
    execution = _run_to_end(aws, pipeline, "hangs", body, seconds=60)
    assert execution["status"] == "FAILED"
    assert invocation_counts()["imgflow-slow-download"] == 3  # Fetch twice, RecordCrash once
    failures = aws.s3().get_object(Bucket=pipeline.bucket, Key="jobs/hangs/failures.json")
    assert "Sandbox.Timedout" in failures["Body"].read().decode()
