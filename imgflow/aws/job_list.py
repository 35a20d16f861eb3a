"""Recent executions of a deployment's state machine, for `imgflow status --backend aws`.

One ListExecutions page (or more, up to `limit`), then for each execution one
DescribeExecution (its input names the parent of a retry) and, once it has ended, its
summary.json for the counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imgflow.aws.client import Aws, NotFoundError, aws_errors
from imgflow.aws.job import PARENT_FIELD, RUNNING
from imgflow.aws.runtime.jobs import get_json, summary_key
from imgflow.engine.records import Summary

PAGE = 1000  # ListExecutions' largest page


@dataclass(frozen=True)
class ExecutionRow:
    """One execution in the listing."""

    name: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    parent: str | None
    summary: Summary | None


def _parent(execution: dict[str, Any]) -> str | None:
    try:
        data = json.loads(execution.get("input") or "{}")
    except ValueError:
        return None
    parent = data.get(PARENT_FIELD) if isinstance(data, dict) else None
    return str(parent) if parent else None


def _summary(aws: Aws, bucket: str, name: str) -> Summary | None:
    try:
        data = get_json(aws.s3(), bucket, summary_key(name))
    except NotFoundError:
        return None
    return Summary(
        int(data["total"]),
        int(data["stored"]),
        int(data["skipped"]),
        int(data["failed"]),
        excluded=int(data.get("excluded", 0)),
    )


def recent_executions(
    aws: Aws, bucket: str, state_machine_arn: str, limit: int
) -> list[ExecutionRow]:
    """The `limit` latest executions, newest first."""
    sfn = aws.stepfunctions()
    listed: list[dict[str, Any]] = []
    token: str | None = None
    while len(listed) < limit:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn}
        kwargs["maxResults"] = min(PAGE, limit - len(listed))
        if token:
            kwargs["nextToken"] = token
        with aws_errors("states:ListExecutions"):
            page = sfn.list_executions(**kwargs)
        listed.extend(dict(e) for e in page["executions"])
        token = page.get("nextToken")
        if not token:
            break
    listed.sort(key=lambda e: e["startDate"], reverse=True)
    rows = []
    for item in listed[:limit]:
        with aws_errors("states:DescribeExecution"):
            execution = sfn.describe_execution(executionArn=item["executionArn"])
        status, name = str(execution["status"]), str(execution["name"])
        rows.append(
            ExecutionRow(
                name=name,
                arn=str(execution["executionArn"]),
                status=status,
                started=execution["startDate"],
                stopped=execution.get("stopDate"),
                parent=_parent(dict(execution)),
                summary=None if status == RUNNING else _summary(aws, bucket, name),
            )
        )
    return rows
