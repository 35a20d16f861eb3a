"""Plan Lambda: validate the job and write its batch manifest (see imgflow.aws.runtime.plan)."""

from __future__ import annotations

from typing import Any

from imgflow.aws.client import lambda_session
from imgflow.aws.runtime.plan import plan_job
from imgflow.aws.runtime.settings import LambdaSettings


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """``{"input": <execution input>, "jobId": <execution name>}`` -> plan counts."""
    settings = LambdaSettings.from_env()
    return plan_job(lambda_session().s3(), settings.bucket, str(event["jobId"]), event["input"])
