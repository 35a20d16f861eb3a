"""Submit Lambda: the HTTP API's job route (see imgflow.aws.runtime.submit)."""

from __future__ import annotations

import os
from typing import Any

from imgflow.aws.client import lambda_session
from imgflow.aws.runtime.submit import STATE_MACHINE_VARIABLE, submit


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """An API Gateway payload 2.0 event -> a proxy answer (200, 400 or 413)."""
    arn = os.environ[STATE_MACHINE_VARIABLE]
    return submit(lambda_session().stepfunctions(), arn, event)
