"""Run a plan: apply each changing step, save the state file after every step."""

from __future__ import annotations

from collections.abc import Callable

from imgflow.aws.client import AwsError, aws_errors
from imgflow.aws.deploy.api import api_url
from imgflow.aws.deploy.context import Context, deploy_error
from imgflow.aws.deploy.plan import Plan, Step
from imgflow.aws.deploy.state import DeploymentOutputs
from infra.names import LAMBDA_ROLES, ROLE_PURPOSES

StepHook = Callable[[Step], None]


def outputs(ctx: Context) -> DeploymentOutputs:
    """The deployment's outputs from its names and what the state file knows."""
    names = ctx.names
    return DeploymentOutputs(
        deployment=ctx.cfg.deployment,
        region=ctx.aws.region,
        endpoint_url=ctx.aws.endpoint_url,
        account=names.account,
        bucket=names.bucket,
        table=names.table,
        topic_arn=names.topic_arn,
        state_machine_arn=names.state_machine_arn,
        api_id=ctx.state.resources.get("api", {}).get("id"),
        api_url=api_url(ctx),
        functions={role: names.function_arn(role) for role in LAMBDA_ROLES},
        roles={purpose: names.role_arn(purpose) for purpose in ROLE_PURPOSES},
    )


def run_step(ctx: Context, step: Step) -> None:
    """Apply one step; an AWS failure becomes a DeployError naming the resource."""
    if step.mutates:
        try:
            with aws_errors(f"{step.kind} {step.name}"):
                step.apply()
        except AwsError as exc:
            raise deploy_error(step.kind, step.name, exc) from None
    if step.ids:
        ctx.state.remember(step.key, **step.ids)


def execute(ctx: Context, plan: Plan, on_step: StepHook | None = None) -> DeploymentOutputs:
    """Apply `plan` in order, saving state after each step; the final outputs."""
    for step in plan.steps:
        run_step(ctx, step)
        if on_step is not None:
            on_step(step)
    result = outputs(ctx)
    ctx.state.outputs = result
    ctx.state.save()
    return result
