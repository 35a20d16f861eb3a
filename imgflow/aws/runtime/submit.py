"""The submit Lambda behind the HTTP API's job route: start an execution, or refuse early.

API Gateway (HTTP API, payload format 2.0) hands the request body over as ``event["body"]``
(base64 when ``isBase64Encoded``). Step Functions refuses an execution input over 262,144
bytes (its quota on input and output sizes), so a larger body is answered here with a 413
that says how to send it instead: upload the paths and send a reference,
``{"manifest": "s3://<bucket>/jobs/.../job.json"}``, as ``imgflow run --via-api`` does
(imgflow/aws/job_api.py). A body that is not a JSON object is a 400. Anything else becomes
the execution input unchanged; the plan step validates the job itself.

The answer for a started job is what the StepFunctions-StartExecution integration answered
before: ``{"executionArn": ..., "startDate": <epoch seconds>}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

# Step Functions' maximum execution input, in bytes (UTF-8).
MAX_EXECUTION_INPUT = 262_144
STATE_MACHINE_VARIABLE = "IMGFLOW_STATE_MACHINE_ARN"
TOO_LARGE = (
    "the job is {size:,} bytes, over the {limit:,} bytes (256 KiB) Step Functions accepts as "
    "execution input; upload the paths to S3 and send a manifest reference instead: "
    '{{"manifest": "s3://<bucket>/jobs/<id>/job.json"}} (as `imgflow run --via-api` does)'
)
NOT_AN_OBJECT = "the request body must be a JSON object (a job or a manifest reference)"


def reply(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """A Lambda proxy answer in payload format 2.0."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def request_body(event: dict[str, Any]) -> bytes | None:
    """The request body as bytes (decoded when base64), or None when it cannot be decoded."""
    raw = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(raw).encode()
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        return None


def submit(sfn: Any, state_machine_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    """The proxy answer for one API request: 413, 400, or the started execution."""
    data = request_body(event)
    if data is None:
        return reply(400, {"message": NOT_AN_OBJECT})
    if len(data) > MAX_EXECUTION_INPUT:
        return reply(413, {"message": TOO_LARGE.format(size=len(data), limit=MAX_EXECUTION_INPUT)})
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        return reply(400, {"message": NOT_AN_OBJECT})
    started = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=data.decode()
    )
    when = started["startDate"]
    return reply(200, {"executionArn": started["executionArn"], "startDate": when.timestamp()})
