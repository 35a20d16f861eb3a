"""Plan the Step Functions state machine (its definition comes from infra.statemachine).

Its execution history goes to CloudWatch Logs at ``aws.sfn_log_level`` (ERROR by default,
OFF for none; execution data never included: it holds job paths) and, with ``aws.xray``,
its executions are traced by X-Ray.
"""

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


def logging_configuration(ctx: Context) -> dict[str, Any]:
    """The state machine's loggingConfiguration, as DescribeStateMachine reports it."""
    level = ctx.cfg.aws.sfn_log_level
    if level == "OFF":
        return {"level": "OFF", "includeExecutionData": False}
    group = f"{ctx.names.state_machine_log_group_arn}:*"
    return {
        "level": level,
        "includeExecutionData": False,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group}}],
    }


def tracing_configuration(ctx: Context) -> dict[str, bool]:
    """The state machine's tracingConfiguration (X-Ray)."""
    return {"enabled": ctx.cfg.aws.xray}


def _observability_changes(ctx: Context, found: dict[str, Any]) -> list[str]:
    changes = []
    logging = dict(found.get("loggingConfiguration") or {"level": "OFF"})
    logging.setdefault("includeExecutionData", False)
    if logging.get("level") == "OFF":
        logging.pop("destinations", None)
    if logging != logging_configuration(ctx):
        changes.append("logging")
    tracing = found.get("tracingConfiguration") or {"enabled": False}
    if bool(tracing.get("enabled")) != ctx.cfg.aws.xray:
        changes.append("tracing")
    return changes


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
            changes += _observability_changes(ctx, dict(found))
            if ctx.missing_tags(tags):
                changes.append("tags")
    text = json.dumps(definition, sort_keys=True)
    logging, tracing = logging_configuration(ctx), tracing_configuration(ctx)

    def apply() -> None:
        if found is None:
            ctx.retry_iam(
                lambda: sfn.create_state_machine(
                    name=name,
                    definition=text,
                    roleArn=role_arn,
                    type="STANDARD",
                    tags=tag_pairs(ctx.tags, "key", "value"),
                    loggingConfiguration=logging,  # type: ignore[arg-type]
                    tracingConfiguration=tracing,  # type: ignore[arg-type]
                ),
                _role_not_ready,
            )
            ctx.state.remember("state_machine", name=name, arn=arn)
            return
        if {"definition", "role", "logging", "tracing"} & set(changes):
            ctx.retry_iam(
                lambda: sfn.update_state_machine(
                    stateMachineArn=arn,
                    definition=text,
                    roleArn=role_arn,
                    loggingConfiguration=logging,  # type: ignore[arg-type]
                    tracingConfiguration=tracing,  # type: ignore[arg-type]
                ),
                _role_not_ready,
            )
        if "tags" in changes:
            sfn.tag_resource(resourceArn=arn, tags=tag_pairs(ctx.tags, "key", "value"))

    ids = {"name": name, "arn": arn}
    exists = found is not None
    settings = (
        "STANDARD",
        f"{len(definition.get('States', {}))} states",
        f"logs {logging['level']}",
        "X-Ray" if ctx.cfg.aws.xray else "no X-Ray",
    )
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
