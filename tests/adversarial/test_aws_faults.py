"""The AWS backend on moto: a crashed batch and throttled S3 / DynamoDB lose nothing.

Everything real but AWS itself: imgflow's deployer, its state machine on moto's Step
Functions interpreter, the handlers run from the deployed zip, images from a FaultServer on
127.0.0.1. Faults are injected below imgflow: a crash in moto's Lambda invoke (driven by the
environment), throttling answers in moto's botocore stubber (see `support.aws_moto`).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.aws_moto import (
    CRASH_BATCHES,
    CRASH_MODE,
    Deployed,
    Throttler,
    check_stored,
    crash_faults,
    deploy_pipeline,
    index_rows,
    job_records,
    moto_session,
    notices,
    pipeline_config,
    run_execution,
    stored_objects,
)
from support.faults import image_body
from support.faultserver import FaultServer, Ok, Status

from imgflow.aws.client import Aws, connect
from imgflow.aws.runtime.jobs import failures_key, get_json, list_keys, results_prefix
from imgflow.engine.messages import BATCH_FAILED, NOT_FOUND, STORE_FAILED, failure_class
from infra.statemachine import FAIL_CAUSE, FAIL_ERROR

SEED = 20261207


@pytest.fixture(scope="module")
def session() -> Iterator[Aws]:
    with moto_session(), crash_faults():
        yield connect(region="us-east-1")


@pytest.fixture
def pipeline(session: Aws, tmp_path: Path) -> Deployed:
    name = f"adv{uuid.uuid4().hex[:8]}"
    return deploy_pipeline(session, pipeline_config(tmp_path / "deployed", deployment=name))


def serve_images(server: FaultServer, count: int, missing: int = 0) -> dict[str, bytes]:
    """`count` good images and `missing` 404s; url -> body for the good ones."""
    rng = random.Random(SEED)
    bodies: dict[str, bytes] = {}
    for n in range(count):
        body = image_body(rng, (40, 2000))
        server.set(f"/img/{n:03d}.gif", Ok(body))
        bodies[server.url(f"/img/{n:03d}.gif")] = body
    for n in range(missing):
        server.set(f"/gone/{n}.gif", Status(404))
    return bodies


def job_body(server: FaultServer, count: int, missing: int, batch_size: int) -> dict[str, Any]:
    paths = [f"/img/{n:03d}.gif" for n in range(count)]
    paths[3:3] = [f"/gone/{n}.gif" for n in range(missing)]
    return {
        "baseUrl": server.base_url,
        "resourcePaths": paths,
        "lambdaConcur": 4,
        "batchSize": batch_size,
    }


def batch_urls(server: FaultServer, body: dict[str, Any], batch: int) -> list[str]:
    size = int(body["batchSize"])
    return [server.url(p) for p in body["resourcePaths"][batch * size : (batch + 1) * size]]


@pytest.mark.parametrize("mode", ["before", "after", "record"])
def test_a_crashed_batch_fails_alone_and_loses_nothing(
    session: Aws,
    pipeline: Deployed,
    fault_server: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """before: the download Lambda dies at once; after: it dies once its work is done (a
    timeout while returning); record: the crash recorder dies as well (the batch is lost)."""
    bodies = serve_images(fault_server, 40, missing=2)
    body = job_body(fault_server, 40, 2, batch_size=6)  # 42 paths, 7 batches
    crashed = (1, 5)
    monkeypatch.setenv(CRASH_BATCHES, ",".join(map(str, crashed)))
    monkeypatch.setenv(CRASH_MODE, mode)
    job = f"crash-{mode}"

    execution = run_execution(session, pipeline.state_machine_arn, body, job)

    assert execution["status"] == "FAILED", execution
    assert (execution["error"], execution["cause"]) == (FAIL_ERROR, FAIL_CAUSE)
    s3, bucket = session.s3(), pipeline.bucket
    crashed_urls = {u for b in crashed for u in batch_urls(fault_server, body, b)}
    missing = {fault_server.url(f"/gone/{n}.gif") for n in range(2)}
    summary = get_json(s3, bucket, f"jobs/{job}/summary.json")
    assert (summary["total"], summary["expected"]) == (42, 42)
    assert summary["failed"] == len(crashed_urls) + len(missing)
    assert summary["stored"] == 42 - summary["failed"]
    assert summary["lostBatches"] == (len(crashed) if mode == "record" else 0)

    # One record per path: the result objects, plus (for lost batches) consolidate's messages.
    written = {
        int(k.rsplit("/", 1)[1].split(".")[0]) for k in list_keys(s3, bucket, results_prefix(job))
    }
    present = sorted(set(range(7)) - (set(crashed) if mode == "record" else set()))
    assert sorted(written) == present
    records = []
    for b in present:
        records.extend(get_json(s3, bucket, f"jobs/{job}/results/{b:06d}.json"))
    failures: list[str] = get_json(s3, bucket, failures_key(job))
    lost = {
        m.split(": ", 1)[1].split(" (", 1)[0] for m in failures if "no results were written" in m
    }
    recorded = {r["url"] for r in records}
    assert not recorded & lost and len(recorded) == len(records)
    assert recorded | lost == set(bodies) | missing

    # Every image of the other batches is stored, byte for byte, and indexed.
    good = {u: b for u, b in bodies.items() if u not in crashed_urls}
    kept = [r for r in records if r["url"] not in crashed_urls | missing]
    assert {r["url"] for r in kept} == set(good)
    assert all(r["outcome"] == "stored" for r in kept)
    check_stored(session, bucket, pipeline.table, kept, good)
    rows = index_rows(session, pipeline.table)
    objects = stored_objects(session, bucket)
    if mode == "after":  # the work was done before the crash: stored and indexed, yet failed
        assert set(rows) == set(bodies) and len(objects) == len(bodies)
    else:
        assert set(rows) == set(good) and len(objects) == len(good)

    # The crashed batches' images are failed with the error; the 404s keep their own class.
    by_class: dict[str, set[str]] = {}
    for message in failures:
        url = message.split(": ", 1)[1].split(" (", 1)[0]
        by_class.setdefault(failure_class(message), set()).add(url)
    assert by_class == {BATCH_FAILED: crashed_urls, NOT_FOUND: missing}
    for message in failures:
        if failure_class(message) == BATCH_FAILED:
            if mode == "record":
                assert re.search(r"no results were written for batch [15]\)$", message), message
            else:
                assert "InjectedCrash" in message and "injected crash in batch" in message
    for record in records:
        if record["url"] in crashed_urls:
            assert record["outcome"] == "failed" and record["error"] in failures
    assert len(failures) == len(crashed_urls) + len(missing)

    # SNS got the failures as the original's JSON array.
    assert [json.loads(n) for n in notices(session, pipeline.queue_url)] == [failures]


def test_throttled_s3_and_dynamodb_are_retried_and_nothing_is_lost(
    session: Aws, pipeline: Deployed, fault_server: FaultServer
) -> None:
    bodies = serve_images(fault_server, 60)
    body = job_body(fault_server, 60, 0, batch_size=10)
    throttler = Throttler(seed=SEED, rate=0.5, put_failures=3)
    with throttler.installed():
        execution = run_execution(session, pipeline.state_machine_arn, body, "throttled")
    assert execution["status"] == "SUCCEEDED", execution
    injected = dict(throttler.injected)
    assert injected.get("s3 PutObject SlowDown", 0) >= 60
    assert injected.get("dynamodb BatchWriteItem UnprocessedItems", 0) >= 2
    assert injected.get("dynamodb BatchGetItem UnprocessedKeys", 0) >= 2
    throttle_errors = [k for k in injected if k.endswith("Exception")]
    assert len(throttle_errors) == 2, injected  # both codes were seen
    # Every throttled object put was retried until it went through.
    # (robots.txt's kept answer is left out: the concurrent first batches of a host may each
    # put it, the race docs/architecture.md accepts, so its key counts several puts.)
    retried = [
        a
        for what, a in throttler.attempts.items()
        if what.startswith("put ") and "/robots/" not in what
    ]
    assert retried and all(a == throttler.put_failures + 1 for a in retried)

    records = job_records(session, pipeline.bucket, "throttled", 6)
    by_url = check_stored(session, pipeline.bucket, pipeline.table, records, bodies)
    assert {r["outcome"] for r in by_url.values()} == {"stored"}
    assert len(index_rows(session, pipeline.table)) == 60
    assert len(stored_objects(session, pipeline.bucket)) == 60
    assert notices(session, pipeline.queue_url) == []

    # Rerun under throttling again (another draw): the index says all 60 are stored.
    requests = len(fault_server.requests)
    again = Throttler(seed=SEED + 1, rate=0.7, put_failures=2)
    with again.installed():
        execution = run_execution(session, pipeline.state_machine_arn, body, "throttled-again")
    assert execution["status"] == "SUCCEEDED", execution
    assert again.injected["dynamodb BatchGetItem UnprocessedKeys"] >= 2
    records = job_records(session, pipeline.bucket, "throttled-again", 6)
    by_url = check_stored(session, pipeline.bucket, pipeline.table, records, bodies)
    assert {r["outcome"] for r in by_url.values()} == {"skipped"}
    assert len(fault_server.requests) == requests


def test_s3_throttling_beyond_the_retries_fails_that_image_only(
    session: Aws, pipeline: Deployed, fault_server: FaultServer
) -> None:
    bodies = serve_images(fault_server, 20)
    body = job_body(fault_server, 20, 0, batch_size=10)
    stuck = fault_server.url("/img/007.gif")
    throttler = Throttler(seed=SEED, rate=0.0, put_failures=0, stuck="/img/007.gif")
    with throttler.installed():
        execution = run_execution(session, pipeline.state_machine_arn, body, "stuck")
    assert execution["status"] == "FAILED" and execution["cause"] == FAIL_CAUSE
    records = job_records(session, pipeline.bucket, "stuck", 2)
    by_url = check_stored(session, pipeline.bucket, pipeline.table, records, bodies)
    failed = {u: r for u, r in by_url.items() if r["outcome"] == "failed"}
    assert list(failed) == [stuck]
    assert failure_class(failed[stuck]["error"]) == STORE_FAILED
    assert "SlowDown" in failed[stuck]["error"]
    assert stuck not in index_rows(session, pipeline.table)
    assert [json.loads(n) for n in notices(session, pipeline.queue_url)] == [
        [failed[stuck]["error"]]
    ]
