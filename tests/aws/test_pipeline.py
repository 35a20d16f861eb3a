"""The whole pipeline on moto's Step Functions interpreter, handlers run from the zip.

The interpreter is made as strict as AWS about the Distributed Map (tests/aws/sfn_limits.py):
a child input over 256 KiB cannot start, and a failed child fails the Map.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
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
from sfn_limits import started_inputs, strict_map

from imgflow.aws.client import Aws
from imgflow.aws.runtime import plan as plan_step
from imgflow.aws.runtime.jobs import (
    BatchSpec,
    failures_key,
    get_json,
    manifest_key,
    result_key,
)
from imgflow.demo.server import StaticServer
from imgflow.engine.failures import FailureKind
from imgflow.engine.plan import Item, item_for
from imgflow.engine.records import ResultRecord
from infra.statemachine import FAIL_CAUSE, FAIL_ERROR


@pytest.fixture
def pipeline(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    with patched(), strict_map():
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
    [batch] = get_json(s3, pipeline.bucket, manifest_key("success"))
    planned = batch["items"]
    assert len(planned) == 101  # ht/ht.gif is listed twice
    assert planned[0] == {
        "url": f"{flags.base_url}/ad/ad.gif",
        "key": f"{host}/ad/ad.gif",
        "path": "ad/ad.gif",
    }
    records = get_json(s3, pipeline.bucket, result_key("success", 0))
    assert [(r["url"], r["path"]) for r in records] == [(i["url"], i["path"]) for i in planned]
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
    assert ResultRecord.from_json(failed[0]).failure_kind is FailureKind.NOT_FOUND


def invoke_download(aws: Aws, deployed: Deployed, spec: BatchSpec) -> dict[str, Any]:
    """Run one batch through the deployed download Lambda, as a Map child would."""
    answer = aws.lambda_().invoke(
        FunctionName=deployed.outputs.functions["download"],
        Payload=json.dumps({"batch": spec.to_json()}).encode(),
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    counts: dict[str, Any] = json.loads(answer["Payload"].read())
    return counts


def test_a_batch_is_fetched_under_its_items_keys_and_indexes_their_meta(
    aws: Aws, pipeline: Deployed, flags: StaticServer
) -> None:
    """The download step takes each item's URL and key as the batch holds them (a source
    of full URLs chooses its own keys): nothing is derived again from a base URL."""
    caption = MappingProxyType({"caption": "Andorra", "width": 16})
    chosen = Item(url=f"{flags.base_url}/ad/ad.gif", key="chosen/andorra.gif", meta=caption)
    seeded = item_for(flags.base_url, "mk/mk.gif")
    missing = Item(url=f"{flags.base_url}/zz/zz.gif", key="chosen/none.gif")
    counts = invoke_download(aws, pipeline, BatchSpec("direct", 0, (chosen, seeded, missing), 2))
    assert (counts["total"], counts["stored"], counts["failed"]) == (3, 2, 1)
    s3 = aws.s3()
    listing = s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="images/")
    stored = sorted(o["Key"] for o in listing["Contents"])
    assert stored == sorted(["images/chosen/andorra.gif", f"images/{seeded.key}"])
    records = get_json(s3, pipeline.bucket, result_key("direct", 0))
    assert [(r["url"], r["path"], r["key"]) for r in records] == [
        (chosen.url, chosen.url, "images/chosen/andorra.gif"),
        (seeded.url, "mk/mk.gif", f"images/{seeded.key}"),
        (missing.url, missing.url, None),
    ]
    dynamodb = aws.dynamodb()
    rows = {row["url"]["S"]: row for row in dynamodb.scan(TableName=pipeline.table)["Items"]}
    assert set(rows) == {chosen.url, seeded.url}
    assert rows[chosen.url]["key"]["S"] == "images/chosen/andorra.gif"
    assert json.loads(rows[chosen.url]["meta"]["S"]) == {"caption": "Andorra", "width": 16}
    assert "meta" not in rows[seeded.url]  # written only when the item has any


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
    if not recording_too:  # the caught crash's records say what kind of failure it was
        records = get_json(aws.s3(), pipeline.bucket, result_key("crash", 1))
        assert [r["failureKind"] for r in records] == ["batch-failed", "batch-failed"]


def raising(name: str, times: int | None = None) -> Any:
    """A stand-in for download_batch that fails with the Lambda error `name` (`times` times,
    or always), as Step Functions names it; then runs the real step."""
    import lambdas.download as handler_module

    real = handler_module.download_batch
    error = type(name, (Exception,), {})
    calls = {"n": 0}

    def call(*args: Any) -> Any:
        calls["n"] += 1
        if times is None or calls["n"] <= times:
            raise error("the function did not answer")
        return real(*args)

    return call


def test_lambda_unknown_is_retried_once_then_the_crash_is_recorded(
    aws: Aws, pipeline: Deployed, flags: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda.Unknown covers a timeout or out-of-memory: one retry, not four."""
    import lambdas.download as handler_module

    monkeypatch.setattr(handler_module, "download_batch", raising("Lambda.Unknown"))
    execution = run(aws, pipeline, reference_body("success", flags.base_url), "unknown")
    assert (execution["status"], execution.get("cause")) == ("FAILED", FAIL_CAUSE)
    assert invocation_counts()["imgflow-test-download"] == 3  # Fetch twice, RecordCrash once
    summary = get_json(aws.s3(), pipeline.bucket, "jobs/unknown/summary.json")
    assert (summary["total"], summary["failed"]) == (101, 101)


def test_client_execution_timeout_is_retried_as_transient(
    aws: Aws, pipeline: Deployed, flags: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lambdas.download as handler_module

    flaky = raising("Lambda.ClientExecutionTimeoutException", times=2)
    monkeypatch.setattr(handler_module, "download_batch", flaky)
    execution = run(aws, pipeline, reference_body("success", flags.base_url), "client-timeout")
    assert execution["status"] == "SUCCEEDED", execution
    assert invocation_counts()["imgflow-test-download"] == 3


def long_paths(count: int) -> list[str]:
    """`count` distinct paths of about 1,000 characters (none exists on the server)."""
    segment = "s" * 240
    return [f"long{n:04d}/{segment}/{segment}/{segment}/{segment}.gif" for n in range(count)]


def test_a_batch_over_the_child_input_limit_is_split(
    aws: Aws, pipeline: Deployed, flags: StaticServer
) -> None:
    paths = long_paths(100)  # one batch of 100 items would be a 300 KB child input
    body = {"baseUrl": flags.base_url, "resourcePaths": paths, "batchSize": 100}
    execution = run(aws, pipeline, body, "long-paths")
    assert (execution["status"], execution.get("cause")) == ("FAILED", FAIL_CAUSE)
    manifest = get_json(aws.s3(), pipeline.bucket, manifest_key("long-paths"))
    sizes = [len(json.dumps(item).encode()) for item in manifest]
    assert len(manifest) == 2 and max(sizes) <= plan_step.MAX_CHILD_INPUT_BYTES, sizes
    assert [i["path"] for item in manifest for i in item["items"]] == paths
    assert sorted(started_inputs()) == sorted(
        len(json.dumps(i, separators=(",", ":")).encode()) for i in manifest
    )
    summary = get_json(aws.s3(), pipeline.bucket, "jobs/long-paths/summary.json")
    assert (summary["total"], summary["failed"], summary["lostBatches"]) == (100, 100, 0)
    assert summary["mapFailed"] is None
    [notice] = notices(aws, pipeline.queue_url)
    assert json.loads(notice)["summary"] == "100 of 100 images failed to download"


def test_a_child_that_cannot_start_still_ends_in_consolidate(
    aws: Aws, pipeline: Deployed, flags: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the plan made a 300 KB batch: AWS cannot start that child and fails the Map;
    the Map's Catch still runs Consolidate, which reports every path, and SNS is told."""
    monkeypatch.setattr(plan_step, "MAX_CHILD_INPUT_BYTES", 10**9)
    flags_paths = ["ad/ad.gif", "ht/ht.gif", "mk/mk.gif", "us/us.gif", "cn/cn.gif"]
    paths = long_paths(300) + flags_paths
    body = {"baseUrl": flags.base_url, "resourcePaths": paths, "batchSize": 300}
    execution = run(aws, pipeline, body, "too-big")
    assert (execution["status"], execution.get("error"), execution.get("cause")) == (
        "FAILED",
        FAIL_ERROR,
        FAIL_CAUSE,
    )
    s3 = aws.s3()
    summary = get_json(s3, pipeline.bucket, "jobs/too-big/summary.json")
    assert (summary["total"], summary["expected"]) == (305, 305)
    assert (summary["stored"], summary["failed"], summary["lostBatches"]) == (5, 300, 1)
    assert summary["mapFailed"].startswith("States.ExceedToleratedFailureThreshold")
    failures: list[str] = get_json(s3, pipeline.bucket, failures_key("too-big"))
    assert len(failures) == 300
    urls = {m.split(": ", 1)[1].split(" (", 1)[0] for m in failures}
    assert urls == {f"{flags.base_url}/{p}" for p in long_paths(300)}
    assert all(
        "no results were written for batch 0; the download map failed "
        "(States.ExceedToleratedFailureThreshold" in m
        for m in failures
    )
    [notice] = notices(aws, pipeline.queue_url)
    sent = json.loads(notice)
    assert sent["summary"] == "300 of 305 images failed to download"
    assert sent["failuresFile"] == f"s3://{pipeline.bucket}/{failures_key('too-big')}"
    assert len(aws.dynamodb().scan(TableName=pipeline.table)["Items"]) == 5


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
