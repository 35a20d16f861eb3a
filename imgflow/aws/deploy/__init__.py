"""`imgflow deploy`: desired resources from config -> a plan (describe calls only) -> execute.

Usage::

    from imgflow.aws.deploy import deploy, plan_deploy
    result = deploy(cfg, aws, dry_run=False)    # DeployResult: plan, outputs, dry_run
    result.plan.steps                           # create / update / no change, with changes
    result.outputs                              # DeploymentOutputs (also in the state file)

Every resource is tagged ``imgflow:deployment=<name>``; the state file
``<aws.state_dir>/<name>.json`` is saved after every step. Without a state file the planner
finds the tagged resources by name and adopts them. AWS failures raise DeployError naming the
resource, the failed call, the AWS error code and what to try.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgflow.aws.client import Aws, from_config
from imgflow.aws.deploy.api import api_step
from imgflow.aws.deploy.context import Context, DefinitionBuilder
from imgflow.aws.deploy.discover import find_resources
from imgflow.aws.deploy.executor import StepHook, execute, outputs
from imgflow.aws.deploy.functions import function_steps
from imgflow.aws.deploy.logs import log_group_steps, state_machine_log_group_steps
from imgflow.aws.deploy.notify import topic_step
from imgflow.aws.deploy.pipeline import default_definition, state_machine_step
from imgflow.aws.deploy.plan import Plan, Step
from imgflow.aws.deploy.roles import former_role_steps, role_steps
from imgflow.aws.deploy.state import DeploymentOutputs, load_outputs, load_state
from imgflow.aws.deploy.storage import bucket_step, table_step
from imgflow.aws.runtime.settings import AWS_LAYOUTS
from imgflow.aws.zips import LambdaZip, lambda_zip
from imgflow.errors import UsageError
from infra.names import Names

if TYPE_CHECKING:
    from imgflow.config import Config

__all__ = [
    "DeployResult",
    "DeploymentOutputs",
    "Plan",
    "Step",
    "context",
    "deploy",
    "discover",
    "load_outputs",
    "plan_deploy",
]


@dataclass(frozen=True)
class DeployResult:
    """What deploy planned, and (unless a dry run) the outputs it left."""

    plan: Plan
    outputs: DeploymentOutputs
    dry_run: bool


def context(
    cfg: Config, aws: Aws | None = None, sleep: Callable[[float], None] = time.sleep
) -> Context:
    """A deploy/teardown context for `cfg` (connects with cfg.aws.* unless `aws` is given)."""
    aws = aws or from_config(cfg)
    names = Names(cfg.deployment, aws.account_id(), aws.region, aws.partition())
    return Context(cfg, aws, names, load_state(cfg), sleep)


def _warnings(cfg: Config) -> tuple[str, ...]:
    warnings = []
    if cfg.api.auth == "none":
        warnings.append("api.auth is none: anyone who finds the API URL can start jobs")
    if not cfg.storage.tls_only:
        warnings.append(
            "storage.tls_only is false: the bucket accepts requests without TLS "
            "(meant for local emulators only)"
        )
    return tuple(warnings)


def plan_deploy(
    ctx: Context,
    definition: DefinitionBuilder | None = None,
    package: LambdaZip | None = None,
) -> Plan:
    """The plan for `ctx`'s deployment, made with describe/get calls only."""
    lam = ctx.cfg.lambda_
    package = package or lambda_zip(lam.runtime, lam.architecture)
    build = definition or default_definition()
    steps = [
        bucket_step(ctx),
        table_step(ctx),
        topic_step(ctx),
        *role_steps(ctx),
        *log_group_steps(ctx),
        *function_steps(ctx, package),
        *state_machine_log_group_steps(ctx),
        state_machine_step(ctx, build),
        api_step(ctx),
        *former_role_steps(ctx),  # after the API, which no longer needs them
    ]
    return Plan(tuple(steps), outputs(ctx), _warnings(ctx.cfg))


def deploy(
    cfg: Config,
    aws: Aws | None = None,
    *,
    dry_run: bool = False,
    definition: DefinitionBuilder | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_step: StepHook | None = None,
) -> DeployResult:
    """Plan and (unless `dry_run`) apply the deployment of `cfg`; idempotent."""
    if cfg.output.layout not in AWS_LAYOUTS:
        raise UsageError(
            f"output.layout: {cfg.output.layout} goes with the local backend"
            f" (on aws: {' or '.join(AWS_LAYOUTS)})"
        )
    ctx = context(cfg, aws, sleep)
    plan = plan_deploy(ctx, definition)
    if dry_run:
        return DeployResult(plan, plan.outputs, dry_run=True)
    return DeployResult(plan, execute(ctx, plan, on_step), dry_run=False)


def discover(cfg: Config, aws: Aws | None = None) -> DeploymentOutputs | None:
    """Outputs of a deployment found by its tagged resources (when the state file is lost)."""
    ctx = context(cfg, aws)
    found = find_resources(ctx)
    if "state_machine" not in found:
        return None
    ctx.state.resources.update(found)
    return outputs(ctx)
