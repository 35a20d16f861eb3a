"""`imgflow teardown`: delete a deployment's resources in reverse dependency order.

Finds resources from the state file and by name + ``imgflow:deployment`` tag (so it works
after a partial deploy or with the state file lost). A bucket with objects or a table with
items is kept unless ``delete_data`` is true. A second teardown finds nothing and does nothing.

Usage::

    from imgflow.aws.teardown import teardown
    result = teardown(cfg, aws=None, delete_data=False)   # TeardownResult
    result.deleted, result.kept   # [(kind, name)], [(kind, name, reason)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgflow.aws.client import Aws, AwsError, aws_errors
from imgflow.aws.deploy import context
from imgflow.aws.deploy.context import Context, deploy_error
from imgflow.aws.deploy.discover import FINDERS, find_resources
from imgflow.aws.deploy.roles import delete_role

if TYPE_CHECKING:
    from imgflow.config import Config

Ids = dict[str, str]
KINDS = {
    "bucket": "s3 bucket",
    "table": "dynamodb table",
    "topic": "sns topic",
    "role": "iam role",
    "log_group": "log group",
    "function": "lambda function",
    "state_machine": "state machine",
    "api": "http api",
}
TEARDOWN_HINT = "fix the cause and run `imgflow teardown` again"


@dataclass
class TeardownResult:
    """What teardown deleted and what it kept (with why)."""

    deleted: list[tuple[str, str]] = field(default_factory=list)
    kept: list[tuple[str, str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The result as JSON."""
        return {
            "deleted": [{"resource": k, "name": n} for k, n in self.deleted],
            "kept": [{"resource": k, "name": n, "reason": r} for k, n, r in self.kept],
        }


def _empty_bucket(ctx: Context, bucket: str) -> None:
    s3 = ctx.aws.s3()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})  # type: ignore[typeddict-item]


def _delete_bucket(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    s3, bucket = ctx.aws.s3(), ids["name"]
    if s3.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0):
        if not delete_data:
            return "has objects (images); use --delete-data to delete them"
        _empty_bucket(ctx, bucket)
    s3.delete_bucket(Bucket=bucket)
    return None


def _delete_table(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    ddb, table = ctx.aws.dynamodb(), ids["name"]
    if ddb.scan(TableName=table, Limit=1, Select="COUNT").get("Count", 0) and not delete_data:
        return "has items (the index); use --delete-data to delete it"
    ddb.delete_table(TableName=table)
    return None


def _delete_topic(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    ctx.aws.sns().delete_topic(TopicArn=ids["arn"])
    return None


def _delete_role(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    delete_role(ctx, ids["name"])
    return None


def _delete_log_group(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    ctx.aws.logs().delete_log_group(logGroupName=ids["name"])
    return None


def _delete_function(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    ctx.aws.lambda_().delete_function(FunctionName=ids["name"])
    return None


def _delete_state_machine(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    ctx.aws.stepfunctions().delete_state_machine(stateMachineArn=ids["arn"])
    return None


def _delete_api(ctx: Context, ids: Ids, delete_data: bool) -> str | None:
    ctx.aws.apigatewayv2().delete_api(ApiId=ids["id"])
    return None


Deleter = Callable[[Context, Ids, bool], "str | None"]
DELETERS: dict[str, Deleter] = {
    "bucket": _delete_bucket,
    "table": _delete_table,
    "topic": _delete_topic,
    "role": _delete_role,
    "log_group": _delete_log_group,
    "function": _delete_function,
    "state_machine": _delete_state_machine,
    "api": _delete_api,
}


def _delete(ctx: Context, key: str, ids: Ids, delete_data: bool, result: TeardownResult) -> None:
    kind_key = key.split(":")[0]
    kind, name = KINDS[kind_key], ids.get("name") or ids.get("id") or key
    try:
        with aws_errors(f"{kind} {name}"):
            reason = DELETERS[kind_key](ctx, ids, delete_data)
    except AwsError as exc:
        if exc.code in ("NoSuchBucket", "NoSuchEntity", "ResourceNotFoundException", "NotFound"):
            reason = None  # already gone
        else:
            raise deploy_error(kind, name, exc, TEARDOWN_HINT) from None
    if reason:
        result.kept.append((kind, name, reason))
        return
    ctx.state.forget(key)
    result.deleted.append((kind, name))


def teardown(cfg: Config, aws: Aws | None = None, *, delete_data: bool = False) -> TeardownResult:
    """Delete `cfg.deployment`'s resources, newest first; keep data unless `delete_data`."""
    ctx = context(cfg, aws)
    found = find_resources(ctx)
    result = TeardownResult()
    for key in reversed(list(FINDERS)):
        if key in found:
            _delete(ctx, key, found[key], delete_data, result)
        else:
            ctx.state.forget(key)
    if not result.kept:
        ctx.state.delete()
    elif ctx.state.outputs is not None:
        ctx.state.outputs = None
        ctx.state.save()
    return result
