"""The AWS backend on moto for the adversarial suite: a moto session, a deployed pipeline,
executions, fault injection below the handlers, and the checks that nothing was lost.

- ``moto_session()``: moto in process (Step Functions executing definitions, Lambda without
  Docker) with ``tests/aws/lambda_invoke`` running our handlers from the deployed zip.
- ``crash_faults()``: moto's Lambda invoke, wrapped: a download invocation whose batch
  number is listed in ``IMGFLOW_FAULT_CRASH_BATCHES`` crashes (an unhandled error, as Lambda
  reports it) before the handler runs, after it ran (``IMGFLOW_FAULT_CRASH_MODE=after``),
  and also when recording the crash (``...=record``). Nothing in imgflow knows of it.
- ``Throttler``: wraps moto's botocore stubber (the ``before-send`` handler that answers
  every request) and answers chosen attempts as AWS does under load: S3 503 SlowDown,
  DynamoDB 400 ProvisionedThroughputExceededException / ThrottlingException, a
  BatchWriteItem that writes part of its items and hands the rest back as UnprocessedItems,
  a BatchGetItem that hands its keys back as UnprocessedKeys. botocore's standard retry
  mode sees real HTTP answers, so its retries (and imgflow's loops) are what is tested.
- ``run_execution``, ``stored_objects``, ``index_rows``, ``check_job``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aws"))

import lambda_invoke
from pipeline_env import (
    MOTO_CONFIG,
    Deployed,
    deploy_pipeline,
    notices,
    pipeline_config,
)

from imgflow.aws.client import Aws
from imgflow.aws.runtime.jobs import get_json, result_key
from support.lambda_states import LambdaStates

__all__ = ["Deployed", "deploy_pipeline", "notices", "pipeline_config"]  # re-exported

CRASH_BATCHES = "IMGFLOW_FAULT_CRASH_BATCHES"
CRASH_MODE = "IMGFLOW_FAULT_CRASH_MODE"


@contextlib.contextmanager
def moto_session() -> Iterator[None]:
    """Fake credentials, moto in process, our handlers run by moto's Lambda."""
    with pytest.MonkeyPatch.context() as mp:
        for name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ):
            mp.delenv(name, raising=False)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(name, "testing")
        with (
            LambdaStates().installed(),
            mock_aws(config=MOTO_CONFIG),
            lambda_invoke.patched(),
        ):
            yield


def _unhandled(response_headers: Any, message: str) -> bytes:
    response_headers["x-amz-function-error"] = "Unhandled"
    error = {"errorMessage": message, "errorType": "InjectedCrash", "stackTrace": []}
    return json.dumps(error).encode()


@contextlib.contextmanager
def crash_faults() -> Iterator[None]:
    """Wrap moto's (patched) Lambda invoke with the environment-driven crash fault."""
    inner = LambdaSimpleBackend.invoke

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> Any:
        listed = os.environ.get(CRASH_BATCHES, "")
        fn = self.get_function(function_name, qualifier)
        event = json.loads(body) if body else {}
        if listed and fn.function_name.endswith("-download") and "batch" in event:
            number = int(event["batch"]["batch"])
            mode = os.environ.get(CRASH_MODE, "before")
            recording = "crash" in event
            if number in {int(n) for n in listed.split(",")} and (
                not recording or mode == "record"
            ):
                message = f"injected crash in batch {number}"
                if mode == "after" and not recording:
                    inner(self, function_name, qualifier, body, headers, response_headers)
                    message += " after its work was done"
                return _unhandled(response_headers, message)
        return inner(self, function_name, qualifier, body, headers, response_headers)

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        LambdaSimpleBackend.invoke = inner  # type: ignore[method-assign]


# --- throttling ---------------------------------------------------------------------------


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _body_bytes(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    data = body.read()
    body.seek(0)
    return data if isinstance(data, bytes) else str(data).encode()


def _json_response(
    request: AWSPreparedRequest, status: int, payload: Mapping[str, Any]
) -> AWSResponse:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-RequestId": "injected",
        "x-amz-crc32": str(zlib.crc32(body) & 0xFFFFFFFF),
        "Content-Length": str(len(body)),
    }
    return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]


def _slow_down(request: AWSPreparedRequest) -> AWSResponse:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message>"
        b"<RequestId>injected</RequestId></Error>"
    )
    headers = {"Content-Type": "application/xml", "Content-Length": str(len(body))}
    return AWSResponse(request.url, 503, headers, MockRawResponse(body))  # type: ignore[arg-type]


def _dynamo_throttle(request: AWSPreparedRequest, code: str) -> AWSResponse:
    payload = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}
    return _json_response(request, 400, payload)


_PORT = re.compile(r"127\.0\.0\.1(?::|_|%3A|%3a)\d+")


def _digest(body: bytes) -> str:
    """A digest of a request body that does not depend on the loopback server's port."""
    text = _PORT.sub("127.0.0.1", body.decode("utf-8", "replace"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Throttler:
    """Throttle some S3 PutObject, DynamoDB BatchWriteItem and BatchGetItem attempts.

    Each distinct request (an object key, a BatchWrite/BatchGet body) is chosen by a stable
    hash of itself and `seed`; a chosen S3 put gets ``put_failures`` 503 SlowDown answers
    before moto stores it. A chosen BatchWriteItem body first gets a throttling error, then
    writes only half its items and returns the rest as UnprocessedItems (which imgflow
    sends again as a new body). A chosen BatchGetItem body returns every key unprocessed.
    """

    seed: int
    rate: float = 0.5
    put_failures: int = 3
    stuck: str | None = None  # an object key containing this is throttled on every attempt
    injected: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _decided: dict[str, bool] = field(default_factory=dict)
    _firsts: Counter[str] = field(default_factory=Counter)

    def chosen(self, text: str) -> bool:
        # The loopback server's port changes from run to run: leave it out of the draw.
        text = _PORT.sub("127.0.0.1", text)
        return _stable(f"{self.seed}:{text}") % 1000 < self.rate * 1000

    def chosen_in_turn(self, kind: str, digest: str) -> bool:
        """Every (1 / rate)-th distinct body of `kind`, decided when first seen.

        Bodies hold times and ids that differ from run to run, so a hash of them would
        make the number of injections vary; counting first sightings keeps it fixed.
        """
        with self._lock:
            if digest not in self._decided:
                self._firsts[kind] += 1
                period = max(1, round(1 / self.rate)) if self.rate > 0 else 0
                self._decided[digest] = bool(period) and self._firsts[kind] % period == 1 % period
            return self._decided[digest]

    def _count(self, what: str) -> int:
        with self._lock:
            self.attempts[what] += 1
            return self.attempts[what]

    def _injected(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def answer(
        self, original: Callable[..., Any], event_name: str, request: AWSPreparedRequest
    ) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation == "PutObject" and "/_map-results" not in request.url:
            key = request.url.split("?", 1)[0]
            if self.stuck is not None and self.stuck in key:
                self._injected("s3 PutObject SlowDown (every attempt)")
                return _slow_down(request)
            ours = "/images/" in key or "/jobs/" in key
            if ours and self.chosen(key) and self._count(f"put {key}") <= self.put_failures:
                self._injected("s3 PutObject SlowDown")
                return _slow_down(request)
        elif operation == "BatchWriteItem":
            body = _body_bytes(request)
            digest = _digest(body)
            if self.chosen_in_turn("write", digest):
                attempt = self._count(f"write {digest}")
                if attempt == 1:
                    with self._lock:  # alternate, so both codes are always seen
                        turn = sum(n for k, n in self.injected.items() if k.endswith("Exception"))
                    code = (
                        "ProvisionedThroughputExceededException"
                        if turn % 2
                        else "ThrottlingException"
                    )
                    self._injected(f"dynamodb BatchWriteItem {code}")
                    return _dynamo_throttle(request, code)
                if attempt == 2:
                    return self._partial_write(original, event_name, request, body)
        elif operation == "BatchGetItem":
            body = _body_bytes(request)
            digest = _digest(body)
            if self.chosen_in_turn("get", digest) and self._count(f"get {digest}") == 1:
                keys = json.loads(body)["RequestItems"]
                self._injected("dynamodb BatchGetItem UnprocessedKeys")
                return _json_response(request, 200, {"Responses": {}, "UnprocessedKeys": keys})
        result: AWSResponse | None = original(event_name=event_name, request=request)
        return result

    def _partial_write(
        self,
        original: Callable[..., Any],
        event_name: str,
        request: AWSPreparedRequest,
        body: bytes,
    ) -> AWSResponse | None:
        data = json.loads(body)
        [(table, items)] = data["RequestItems"].items()
        if len(items) < 2:
            return None
        half = math.ceil(len(items) / 2)
        kept = json.dumps({**data, "RequestItems": {table: items[:half]}}).encode()
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name] = value
        del headers["Content-Length"]
        headers["Content-Length"] = str(len(kept))
        smaller = AWSPreparedRequest(request.method, request.url, headers, kept, False)
        answer = original(event_name=event_name, request=smaller)
        payload = json.loads(answer.content)
        payload["UnprocessedItems"] = {table: items[half:]}
        self._injected("dynamodb BatchWriteItem UnprocessedItems")
        return _json_response(request, 200, payload)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Throttler]:
        """Answer through moto's stubber with the throttling; botocore's backoff made 0 s."""
        from botocore.retries import standard

        original_call = BotocoreStubber.__call__
        throttler = self

        def call(
            stubber: BotocoreStubber, event_name: str, request: AWSPreparedRequest, **kw: Any
        ) -> AWSResponse | None:
            def through(**args: Any) -> Any:
                return original_call(stubber, **args, **kw)

            if not stubber.enabled:
                return original_call(stubber, event_name, request, **kw)
            answer = throttler.answer(through, event_name, request)
            if answer is None:
                return original_call(stubber, event_name, request, **kw)
            return answer

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(BotocoreStubber, "__call__", call)
            mp.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
            yield self


# --- runs and checks ----------------------------------------------------------------------


def run_execution(
    aws: Aws, state_machine_arn: str, body: Mapping[str, Any], name: str, timeout: float = 90
) -> dict[str, Any]:
    """Start a named execution and wait for it to end; its description."""
    sfn = aws.stepfunctions()
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(body))[
        "executionArn"
    ]
    return wait_for_execution(aws, arn, timeout)


def wait_for_execution(aws: Aws, arn: str, timeout: float = 90) -> dict[str, Any]:
    """Wait for execution `arn` to end; its description."""
    sfn = aws.stepfunctions()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return dict(execution)
        time.sleep(0.05)
    raise AssertionError(f"execution {arn} still running after {timeout} s")


def stored_objects(aws: Aws, bucket: str, prefix: str = "images/") -> dict[str, bytes]:
    """Key -> bytes of every object under `prefix`."""
    s3 = aws.s3()
    found: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return found


def index_rows(aws: Aws, table: str) -> dict[str, dict[str, Any]]:
    """url -> item of every index row."""
    rows: dict[str, dict[str, Any]] = {}
    for page in aws.dynamodb().get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            url = item["url"]["S"]
            assert url not in rows, f"{url} indexed twice"
            rows[url] = dict(item)
    return rows


def job_records(aws: Aws, bucket: str, job_id: str, batches: int) -> list[dict[str, Any]]:
    """Every result record of a job, batch by batch (an absent batch fails the check)."""
    records: list[dict[str, Any]] = []
    for number in range(batches):
        records.extend(get_json(aws.s3(), bucket, result_key(job_id, number)))
    return records


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_stored(
    aws: Aws,
    bucket: str,
    table: str,
    records: list[dict[str, Any]],
    bodies: Mapping[str, bytes],
) -> dict[str, dict[str, Any]]:
    """One record per url of `bodies`; every stored or skipped image in S3 with the server's
    bytes and an index row naming its key and sha256; the index names only stored objects."""
    by_url: dict[str, dict[str, Any]] = {}
    for record in records:
        assert record["url"] not in by_url, f"{record['url']}: two records"
        by_url[record["url"]] = record
    missing, extra = set(bodies) - set(by_url), set(by_url) - set(bodies)
    assert not missing and not extra, f"missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}"
    objects = stored_objects(aws, bucket)
    rows = index_rows(aws, table)
    for url, record in by_url.items():
        if record["outcome"] == "failed":
            assert record.get("error"), f"{url}: failed without a message"
            continue
        row = rows.get(url)
        assert row is not None, f"{url}: {record['outcome']} but not indexed"
        key = row["key"]["S"]
        assert key in objects, f"{url}: indexed at {key} but no such object"
        assert sha(objects[key]) == row["sha256"]["S"] == sha(bodies[url]), f"{url}: bytes"
    for url, row in rows.items():
        assert row["key"]["S"] in objects, f"{url}: index row without its object"
    return by_url
