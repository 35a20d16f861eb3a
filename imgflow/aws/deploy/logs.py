"""Plan the CloudWatch Logs groups: the functions' (created before the functions) and, unless
``aws.sfn_log_level: OFF``, the state machine's; tagged, retained.

Lambda writes a function's logs to ``/aws/lambda/<function>`` and, left alone, creates that
group itself: untagged, kept forever and never deleted. Deploy owns the groups instead.
An untagged group with our name is adopted (tagged, given the configured retention): it is
where our function's logs go whoever made it, typically Lambda itself for a deployment made
before imgflow managed log groups. Whether the name is ours to use is the function step's
check: a function of that name that is not ours stops the deploy while it is planned.
"""

from __future__ import annotations

from typing import Any

from imgflow.aws.deploy.context import Context
from imgflow.aws.deploy.plan import Step, step
from infra.names import LAMBDA_ROLES

LOG_GROUP = "log group"


def find_log_group(ctx: Context, name: str) -> dict[str, Any] | None:
    """The log group `name` as DescribeLogGroups reports it, if any."""
    found = ctx.aws.logs().describe_log_groups(logGroupNamePrefix=name, limit=50)
    return next((dict(g) for g in found.get("logGroups", []) if g["logGroupName"] == name), None)


def log_group_tags(ctx: Context, arn: str) -> dict[str, str]:
    """The tags of the log group `arn`."""
    return dict(ctx.aws.logs().list_tags_for_resource(resourceArn=arn).get("tags", {}))


def _retention(days: int | None) -> str:
    return "kept forever" if days is None else f"kept {days} d"


def log_group_step(ctx: Context, owner: str, name: str, arn: str) -> Step:
    """Create or update the log group `name` of `owner` (a role or "statemachine")."""
    logs = ctx.aws.logs()
    key = f"log_group:{owner}"
    wanted = ctx.cfg.lambda_.log_retention_days
    changes: list[str] = []
    with ctx.reading(LOG_GROUP, name):
        found = find_log_group(ctx, name)
        if found is not None:
            tags = log_group_tags(ctx, arn)
            if found.get("retentionInDays") != wanted:
                changes.append("retention")
            if ctx.missing_tags(tags):
                changes.append("tags")

    def apply() -> None:
        if found is None:
            logs.create_log_group(logGroupName=name, tags=ctx.tags)
            ctx.state.remember(key, name=name, arn=arn)
        if "tags" in changes:
            logs.tag_resource(resourceArn=arn, tags=ctx.tags)
        if (found is None or "retention" in changes) and wanted is not None:
            logs.put_retention_policy(logGroupName=name, retentionInDays=wanted)
        elif "retention" in changes:
            logs.delete_retention_policy(logGroupName=name)

    ids = {"name": name, "arn": arn}
    settings = (_retention(wanted),)
    exists = found is not None
    return step(key, LOG_GROUP, name, changes, apply, exists=exists, ids=ids, settings=settings)


def log_group_steps(ctx: Context) -> list[Step]:
    """A step for the log group of each function."""
    names = ctx.names
    return [
        log_group_step(ctx, role, names.log_group(role), names.log_group_arn(role))
        for role in LAMBDA_ROLES
    ]


def state_machine_log_group_steps(ctx: Context) -> list[Step]:
    """The state machine's log group, unless its logging is off."""
    if ctx.cfg.aws.sfn_log_level == "OFF":
        return []
    names = ctx.names
    name, arn = names.state_machine_log_group, names.state_machine_log_group_arn
    return [log_group_step(ctx, "statemachine", name, arn)]
