"""Download Lambda: one batch of the manifest (see imgflow.aws.runtime.download)."""

from __future__ import annotations

from typing import Any

from imgflow.aws.client import lambda_session
from imgflow.aws.runtime.download import download_batch, record_crash
from imgflow.aws.runtime.jobs import load_batch
from imgflow.aws.runtime.settings import LambdaSettings


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """``{"batch": <manifest item or lane reference>}`` -> counts; with ``"crash"``, record
    the batch failed."""
    settings = LambdaSettings.from_env()
    aws = lambda_session()
    spec = load_batch(aws.s3(), settings.bucket, event["batch"])
    if "crash" in event:
        return record_crash(aws, settings, spec, event["crash"])
    return download_batch(aws, settings, spec, context)  # type: ignore[arg-type]
