"""Plan the functions' CloudWatch Logs groups: created before the functions, tagged, retained.

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
from infra.names import FUNCTION_ROLES

LOG_GROUP = "log group"


def find_log_group(ctx: Context, role: str) -> dict[str, Any] | None:
    """The log group of the function for `role` as DescribeLogGroups reports it, if any."""
    name = ctx.names.log_group(role)
    found = ctx.aws.logs().describe_log_groups(logGroupNamePrefix=name, limit=50)
    return next((dict(g) for g in found.get("logGroups", []) if g["logGroupName"] == name), None)


def log_group_tags(ctx: Context, role: str) -> dict[str, str]:
    """The tags of the log group of the function for `role`."""
    arn = ctx.names.log_group_arn(role)
    return dict(ctx.aws.logs().list_tags_for_resource(resourceArn=arn).get("tags", {}))


def _retention(days: int | None) -> str:
    return "kept forever" if days is None else f"kept {days} d"


def log_group_step(ctx: Context, role: str) -> Step:
    """Create or update the log group of the function for `role`: tags, retention."""
    logs, name, arn = ctx.aws.logs(), ctx.names.log_group(role), ctx.names.log_group_arn(role)
    key = f"log_group:{role}"
    wanted = ctx.cfg.lambda_.log_retention_days
    changes: list[str] = []
    with ctx.reading(LOG_GROUP, name):
        found = find_log_group(ctx, role)
        if found is not None:
            tags = log_group_tags(ctx, role)
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
    """A step for the log group of each of the three functions."""
    return [log_group_step(ctx, role) for role in FUNCTION_ROLES]
