"""Start a job through the deployment's HTTP API, with the original request body.

The API's route hands the body to the submit Lambda (imgflow/aws/runtime/submit.py), which
starts an execution with it, unchanged, as input (or answers 413 for a body over the
execution input limit, 400 for one that is not a JSON object), so this is what the original
pipeline's curl scripts did; with ``api.auth: iam`` the request is signed with SigV4
(botocore's signer, through imgflow.aws.client).

A job over the 256 KB an execution input may hold is uploaded first, one entry per line,
to jobs/api-<digest>/job.json in the deployment's bucket, and the API gets a reference to
it instead, ``{"manifest": "s3://<bucket>/jobs/api-<digest>/job.json"}``: the plan step
reads either form (runtime/plan.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from imgflow.aws.client import Aws
from imgflow.aws.runtime.job_lines import put_job
from imgflow.aws.runtime.jobs import job_key
from imgflow.errors import BackendError, UsageError

# The execution input travels through Step Functions state, which holds at most 256 KB.
MAX_API_BODY = 256 * 1024


def api_body(body: dict[str, Any]) -> bytes:
    """The request body, or UsageError when it cannot travel as execution input."""
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_API_BODY:
        raise UsageError(
            f"the job is {len(data):,} bytes as JSON, over the {MAX_API_BODY // 1024} KB an "
            "execution input may hold; run without --via-api to upload it as a manifest"
        )
    return data


def uploaded_body(aws: Aws, bucket: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` when it fits an execution input, else a reference to it uploaded to S3."""
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) <= MAX_API_BODY:
        return body
    key = job_key("api-" + hashlib.sha256(data).hexdigest()[:32])
    put_job(aws.s3(), bucket, key, body)
    return {"manifest": f"s3://{bucket}/{key}"}


def start_via_api(
    aws: Aws,
    url: str,
    body: dict[str, Any],
    *,
    sign: bool,
    timeout: float = 30.0,
    bucket: str | None = None,
) -> str:
    """POST the original body to the API route (a large one uploaded to `bucket` and sent
    as a reference); the ARN of the execution it started."""
    data = api_body(body if bucket is None else uploaded_body(aws, bucket, body))
    headers = {"Content-Type": "application/json"}
    if sign:
        headers = aws.signed_headers("POST", url, data, headers, "execute-api")
    try:
        response = httpx.post(url, content=data, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BackendError(f"HTTP API {url}: {exc}") from None
    if response.status_code != 200:
        raise BackendError(
            f"HTTP API {url} answered {response.status_code}: {response.text.strip()[:300]}"
        )
    try:
        arn = response.json()["executionArn"]
    except (ValueError, KeyError, TypeError):
        raise BackendError(f"HTTP API {url}: no executionArn in {response.text[:200]!r}") from None
    if not isinstance(arn, str):
        raise BackendError(f"HTTP API {url}: executionArn is not a string")
    return arn
