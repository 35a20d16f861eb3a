"""Plan the Step Functions state machine (its definition comes from infra.statemachine)."""

from __future__ import annotations

import importlib
import json
from typing import Any, cast

from imgflow.aws.client import AwsError, optional
from imgflow.aws.deploy.context import Context, DefinitionBuilder, pairs_to_dict, tag_pairs
from imgflow.aws.deploy.plan import Step, step
from imgflow.errors import DeployError

STATE_MACHINE = "state machine"


def default_definition() -> DefinitionBuilder:
    """`infra.statemachine.definition`, imported when deploy needs it."""
    try:
        module = importlib.import_module("infra.statemachine")
    except ImportError:
        raise DeployError(
            f"{STATE_MACHINE}: infra/statemachine.py is missing; reinstall imgflow"
        ) from None
    return cast(DefinitionBuilder, module.definition)


def desired_definition(ctx: Context, build: DefinitionBuilder) -> dict[str, Any]:
    """The definition for this deployment's functions, topic and bucket."""
    names = ctx.names
    return build(
        plan_arn=names.function_arn("plan"),
        download_arn=names.function_arn("download"),
        consolidate_arn=names.function_arn("consolidate"),
        topic_arn=names.topic_arn,
        bucket=names.bucket,
        max_batches=ctx.cfg.job.max_batches,
    )


def _role_not_ready(exc: AwsError) -> bool:
    return exc.code == "AccessDeniedException" and "assume" in exc.aws_message.lower()


def state_machine_step(ctx: Context, build: DefinitionBuilder) -> Step:
    """Create the state machine, or update its definition and role."""
    sfn, arn, name = ctx.aws.stepfunctions(), ctx.names.state_machine_arn, ctx.names.state_machine
    definition = desired_definition(ctx, build)
    role_arn = ctx.names.role_arn("statemachine")
    changes: list[str] = []
    with ctx.reading(STATE_MACHINE, name):
        found = optional(lambda: sfn.describe_state_machine(stateMachineArn=arn))
        if found is not None:
            tags = pairs_to_dict(
                sfn.list_tags_for_resource(resourceArn=arn)["tags"], "key", "value"
            )
            ctx.check_owned("state_machine", STATE_MACHINE, name, tags)
            if json.loads(found["definition"]) != definition:
                changes.append("definition")
            if found["roleArn"] != role_arn:
                changes.append("role")
            if ctx.missing_tags(tags):
                changes.append("tags")
    text = json.dumps(definition, sort_keys=True)

    def apply() -> None:
        if found is None:
            ctx.retry_iam(
                lambda: sfn.create_state_machine(
                    name=name,
                    definition=text,
                    roleArn=role_arn,
                    type="STANDARD",
                    tags=tag_pairs(ctx.tags, "key", "value"),
                ),
                _role_not_ready,
            )
            ctx.state.remember("state_machine", name=name, arn=arn)
            return
        if {"definition", "role"} & set(changes):
            ctx.retry_iam(
                lambda: sfn.update_state_machine(
                    stateMachineArn=arn, definition=text, roleArn=role_arn
                ),
                _role_not_ready,
            )
        if "tags" in changes:
            sfn.tag_resource(resourceArn=arn, tags=tag_pairs(ctx.tags, "key", "value"))

    ids = {"name": name, "arn": arn}
    exists = found is not None
    settings = ("STANDARD", f"{len(definition.get('States', {}))} states")
    return step(
        "state_machine",
        STATE_MACHINE,
        name,
        changes,
        apply,
        exists=exists,
        ids=ids,
        settings=settings,
    )
