"""Find a deployment's resources by name and tag (describe calls only): adopt and teardown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgflow.aws.client import optional
from imgflow.aws.deploy.api import find_api
from imgflow.aws.deploy.context import Context, pairs_to_dict
from imgflow.aws.deploy.logs import find_log_group, log_group_tags
from infra.names import FORMER_ROLE_PURPOSES, LAMBDA_ROLES, ROLE_PURPOSES

Ids = dict[str, str]


def _bucket(ctx: Context) -> Ids | None:
    s3, name = ctx.aws.s3(), ctx.names.bucket
    if optional(lambda: s3.head_bucket(Bucket=name)) is None:
        return None
    tagging = optional(lambda: s3.get_bucket_tagging(Bucket=name))
    return {"name": name} if _ours(ctx, "bucket", tagging["TagSet"] if tagging else []) else None


def _table(ctx: Context) -> Ids | None:
    ddb, name = ctx.aws.dynamodb(), ctx.names.table
    found = optional(lambda: ddb.describe_table(TableName=name))
    if found is None:
        return None
    arn = found["Table"]["TableArn"]
    tags = ddb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])
    return {"name": name, "arn": arn} if _ours(ctx, "table", tags) else None


def _topic(ctx: Context) -> Ids | None:
    sns, arn = ctx.aws.sns(), ctx.names.topic_arn
    if optional(lambda: sns.get_topic_attributes(TopicArn=arn)) is None:
        return None
    tags = sns.list_tags_for_resource(ResourceArn=arn)["Tags"]
    return {"name": ctx.names.topic, "arn": arn} if _ours(ctx, "topic", tags) else None


def _role(purpose: str) -> Callable[[Context], Ids | None]:
    def find(ctx: Context) -> Ids | None:
        iam, name = ctx.aws.iam(), ctx.names.role(purpose)
        if optional(lambda: iam.get_role(RoleName=name)) is None:
            return None
        tags = iam.list_role_tags(RoleName=name)["Tags"]
        ids = {"name": name, "arn": ctx.names.role_arn(purpose)}
        return ids if _ours(ctx, f"role:{purpose}", tags) else None

    return find


def _log_group(role: str) -> Callable[[Context], Ids | None]:
    def find(ctx: Context) -> Ids | None:
        if role == "statemachine":
            name, arn = ctx.names.state_machine_log_group, ctx.names.state_machine_log_group_arn
        else:
            name, arn = ctx.names.log_group(role), ctx.names.log_group_arn(role)
        if find_log_group(ctx, name) is None:
            return None
        tags = [{"Key": k, "Value": v} for k, v in log_group_tags(ctx, arn).items()]
        ids = {"name": name, "arn": arn}
        return ids if _ours(ctx, f"log_group:{role}", tags) else None

    return find


def _function(role: str) -> Callable[[Context], Ids | None]:
    def find(ctx: Context) -> Ids | None:
        lam, name = ctx.aws.lambda_(), ctx.names.function(role)
        found = optional(lambda: lam.get_function(FunctionName=name))
        if found is None:
            return None
        tags = [{"Key": k, "Value": v} for k, v in found.get("Tags", {}).items()]
        ids = {"name": name, "arn": ctx.names.function_arn(role)}
        return ids if _ours(ctx, f"function:{role}", tags) else None

    return find


def _state_machine(ctx: Context) -> Ids | None:
    sfn, arn = ctx.aws.stepfunctions(), ctx.names.state_machine_arn
    if optional(lambda: sfn.describe_state_machine(stateMachineArn=arn)) is None:
        return None
    tags = [
        {"Key": t["key"], "Value": t["value"]}
        for t in sfn.list_tags_for_resource(resourceArn=arn)["tags"]
    ]
    ids = {"name": ctx.names.state_machine, "arn": arn}
    return ids if _ours(ctx, "state_machine", tags) else None


def _api(ctx: Context) -> Ids | None:
    found = find_api(ctx)
    if found is None:
        return None
    return {"name": ctx.names.api, "id": found["ApiId"], "endpoint": found["ApiEndpoint"]}


def _ours(ctx: Context, key: str, tags: list[Any]) -> bool:
    return not ctx.missing_tags(pairs_to_dict(tags)) or key in ctx.state.resources


# Resource key -> finder, in dependency order (teardown walks it backwards).
FINDERS: dict[str, Callable[[Context], Ids | None]] = {
    "bucket": _bucket,
    "table": _table,
    "topic": _topic,
    # (an older deployment's former roles too, so teardown removes them)
    **{f"role:{purpose}": _role(purpose) for purpose in (*ROLE_PURPOSES, *FORMER_ROLE_PURPOSES)},
    **{f"log_group:{role}": _log_group(role) for role in LAMBDA_ROLES},
    **{f"function:{role}": _function(role) for role in LAMBDA_ROLES},
    "log_group:statemachine": _log_group("statemachine"),
    "state_machine": _state_machine,
    "api": _api,
}


def find_resources(ctx: Context) -> dict[str, Ids]:
    """Resource key -> ids of every resource of the deployment that exists and is ours."""
    found: dict[str, Ids] = {}
    for key, finder in FINDERS.items():
        with ctx.reading(key.split(":")[0], key):
            ids = finder(ctx)
        if ids is not None:
            found[key] = ids
    return found
