"""Consolidate Lambda: counts, failures file, SNS message (see imgflow.aws.runtime.consolidate)."""

from __future__ import annotations

from typing import Any

from imgflow.aws.client import lambda_session
from imgflow.aws.runtime.consolidate import consolidate
from imgflow.aws.runtime.settings import LambdaSettings


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """``{"plan": <plan result>}`` -> counts, allSucceeded, message."""
    settings = LambdaSettings.from_env()
    plan = event["plan"]
    return consolidate(lambda_session().s3(), settings.bucket, plan, settings.inline_max_messages)
