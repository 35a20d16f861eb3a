"""The whole pipeline on moto's Step Functions interpreter, handlers run from the zip."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_invoke import invocation_counts, patched, reset_counts
from pipeline_env import (
    FLAGS_DIR,
    Deployed,
    deploy_pipeline,
    notices,
    pipeline_config,
    reference_body,
)

from imgflow.aws.client import Aws
from imgflow.aws.lambda_jobs import failures_key, get_json, result_key
from imgflow.demo.server import StaticServer, serve_directory
from infra.statemachine import FAIL_CAUSE


@pytest.fixture(scope="module")
def flags() -> Iterator[StaticServer]:
    with serve_directory(FLAGS_DIR) as server:
        yield server


@pytest.fixture
def pipeline(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    with patched():
        deployed = deploy_pipeline(aws, pipeline_config(tmp_path / "deployed"))
        reset_counts()
        yield deployed


def run(aws: Aws, deployed: Deployed, body: dict[str, Any], name: str) -> dict[str, Any]:
    sfn = aws.stepfunctions()
    arn = sfn.start_execution(
        stateMachineArn=deployed.state_machine_arn, name=name, input=json.dumps(body)
    )["executionArn"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return dict(execution)
        time.sleep(0.05)
    raise AssertionError("execution still running after 60 s")


def test_success_case(aws: Aws, pipeline: Deployed, flags: StaticServer) -> None:
    body = reference_body("success", flags.base_url)
    execution = run(aws, pipeline, body, "success")
    assert execution["status"] == "SUCCEEDED", execution
    s3 = aws.s3()
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=pipeline.bucket, Prefix="images/"
        )
        for o in page.get("Contents", [])
    }
    assert len(keys) == 101
    host = f"127.0.0.1:{flags.base_url.rsplit(':', 1)[1]}"
    assert f"images/{host}/ad/ad.gif" in keys and f"images/{host}/mk/mk.gif" in keys
    obj = s3.get_object(Bucket=pipeline.bucket, Key=f"images/{host}/ht/ht.gif")
    assert obj["Body"].read() == (FLAGS_DIR / "ht" / "ht.gif").read_bytes()
    assert obj["ContentType"] == "image/gif"
    items = aws.dynamodb().scan(TableName=pipeline.table)["Items"]
    assert len(items) == 101
    url = f"{flags.base_url}/ht/ht.gif"
    row = aws.dynamodb().get_item(TableName=pipeline.table, Key={"url": {"S": url}})["Item"]
    assert row["key"]["S"] == f"images/{host}/ht/ht.gif"
    assert row["jobId"]["S"] == "success"
    records = get_json(s3, pipeline.bucket, result_key("success", 0))
    assert {r["outcome"] for r in records} == {"stored"}
    assert get_json(s3, pipeline.bucket, failures_key("success")) == []
    assert notices(aws, pipeline.queue_url) == []
    assert invocation_counts() == {
        "imgflow-test-plan": 1,
        "imgflow-test-download": 1,
        "imgflow-test-consolidate": 1,
    }


def test_failure_case(aws: Aws, pipeline: Deployed, flags: StaticServer) -> None:
    body = reference_body("fail", flags.base_url)
    execution = run(aws, pipeline, body, "fail")
    assert execution["status"] == "FAILED"
    assert execution["cause"] == FAIL_CAUSE
    missing = f"{flags.base_url}/zz/zz.gif"
    assert notices(aws, pipeline.queue_url) == [json.dumps([f"Could not find: {missing}"])]
    items = aws.dynamodb().scan(TableName=pipeline.table)["Items"]
    assert sorted(i["url"]["S"].rsplit("/", 1)[1] for i in items) == [
        "cn.gif",
        "in.gif",
        "mx.gif",
        "us.gif",
    ]
    records = get_json(aws.s3(), pipeline.bucket, result_key("fail", 0))
    failed = [r for r in records if r["outcome"] == "failed"]
    assert [(r["url"], r["statusCode"]) for r in failed] == [(missing, 404)]


def crash_batch(monkeypatch: pytest.MonkeyPatch, batch: int, *, recording_too: bool) -> None:
    import lambdas.download as handler_module

    def crashing(real: Any) -> Any:
        def call(aws: Aws, settings: Any, spec: Any, *rest: Any) -> Any:
            if spec.batch == batch:
                raise RuntimeError(f"boom in batch {batch}")
            return real(aws, settings, spec, *rest)

        return call

    monkeypatch.setattr(handler_module, "download_batch", crashing(handler_module.download_batch))
    if recording_too:
        monkeypatch.setattr(handler_module, "record_crash", crashing(handler_module.record_crash))


@pytest.mark.parametrize("recording_too", [False, True], ids=["caught", "lost"])
def test_a_crashed_batch_is_reported_failed_and_the_others_are_kept(
    aws: Aws,
    pipeline: Deployed,
    flags: StaticServer,
    monkeypatch: pytest.MonkeyPatch,
    recording_too: bool,
) -> None:
    crash_batch(monkeypatch, 1, recording_too=recording_too)
    body = {**reference_body("fail", flags.base_url), "batchSize": 2}
    execution = run(aws, pipeline, body, "crash")
    assert execution["status"] == "FAILED" and execution["cause"] == FAIL_CAUSE
    [notice] = notices(aws, pipeline.queue_url)
    sent = json.loads(notice)
    detail = "no results were written for batch 1" if recording_too else "RuntimeError"
    crashed = [m for m in sent if m.startswith("Batch failed")]
    assert [m.split(": ", 1)[1].split(" (")[0].rsplit("/", 2)[1] for m in crashed] == ["us", "mx"]
    assert all(detail in m for m in crashed)
    assert f"Could not find: {flags.base_url}/zz/zz.gif" in sent
    assert len(aws.dynamodb().scan(TableName=pipeline.table)["Items"]) == 2
    summary = get_json(aws.s3(), pipeline.bucket, "jobs/crash/summary.json")
    assert (summary["total"], summary["stored"], summary["failed"]) == (5, 2, 3)
    assert summary["lostBatches"] == (1 if recording_too else 0)


def test_more_failures_than_inline_max_send_the_summary(
    aws: Aws, pipeline: Deployed, flags: StaticServer
) -> None:
    """Up to notify.inline_max_messages (50) failures, the notice is the original array;
    beyond, a summary naming the failures file."""
    inline_max = pipeline.cfg.notify.inline_max_messages
    for job, failing in (("at-max", inline_max), ("over-max", inline_max + 1)):
        missing = [f"zz/missing-{i}.gif" for i in range(failing)]
        body = {"baseUrl": flags.base_url, "resourcePaths": ["ad/ad.gif", *missing]}
        assert run(aws, pipeline, body, job)["status"] == "FAILED"
        sent = [f"Could not find: {flags.base_url}/{path}" for path in missing]
        assert get_json(aws.s3(), pipeline.bucket, failures_key(job)) == sent
        [notice] = notices(aws, pipeline.queue_url)
        if failing <= inline_max:
            assert notice == json.dumps(sent)
            continue
        assert json.loads(notice) == {
            "summary": f"{failing} of {failing + 1} images failed to download",
            "total": failing + 1,
            "failed": failing,
            "firstMessages": sent[:10],
            "failuresFile": f"s3://{pipeline.bucket}/{failures_key(job)}",
        }
