"""Plan the Lambda functions (plan, download, consolidate; submit behind the API): code from
imgflow's zip, settings from config.

Lambda answers CreateFunction while the function is still ``Pending`` and an update while
it is ``InProgress``; in those states it refuses invocations (Pending) and further updates
(both) with ResourceConflictException. Deploy therefore waits with botocore's own waiters:
``function_active_v2`` after a create, ``function_updated_v2`` before and after each update,
so the functions are ready when deploy returns.
"""

from __future__ import annotations

from typing import Any

from imgflow.aws.client import AwsError, aws_errors, optional
from imgflow.aws.deploy.context import Context
from imgflow.aws.deploy.plan import Step, step
from imgflow.aws.runtime.submit import STATE_MACHINE_VARIABLE
from imgflow.aws.zips import LambdaZip
from imgflow.errors import DeployError
from infra.lambda_env import environment
from infra.names import LAMBDA_ROLES, SUBMIT

FUNCTION = "lambda function"
SUBMIT_MEMORY = 256  # MB: the submit function parses one body and calls StartExecution
# botocore's waiters poll GetFunction once a second, up to 300 times (5 minutes).
ACTIVE = "function_active_v2"
UPDATED = "function_updated_v2"


def desired_settings(ctx: Context, role: str) -> dict[str, Any]:
    """The function's configuration as Lambda reports it."""
    lam = ctx.cfg.lambda_
    memory = {
        "plan": lam.plan_memory,
        "consolidate": lam.consolidate_memory,
        SUBMIT: SUBMIT_MEMORY,
    }.get(role, lam.memory)
    names = ctx.names
    # Only the plan step spills to /tmp (its partitions of a large job's paths).
    storage = {"EphemeralStorage": {"Size": lam.plan_ephemeral_mb}} if role == "plan" else {}
    variables = environment(ctx.cfg, names.bucket, names.table, names.topic_arn)
    if role == SUBMIT:  # the one function that starts executions (the API's job route)
        variables[STATE_MACHINE_VARIABLE] = names.state_machine_arn
    return {
        **storage,
        "Runtime": lam.runtime,
        "Handler": f"lambdas.{role}.handler",
        "Role": names.role_arn(role),
        "Timeout": lam.timeout,
        "MemorySize": memory,
        "Environment": {"Variables": variables},
    }


def _role_not_ready(exc: AwsError) -> bool:
    return exc.code == "InvalidParameterValueException" and "role" in exc.aws_message.lower()


def wait_for(ctx: Context, waiter: str, name: str) -> None:
    """Wait with botocore's `waiter` (function_active_v2 or function_updated_v2) for `name`."""
    try:
        with aws_errors(f"lambda:{waiter}"):
            ctx.aws.lambda_().get_waiter(waiter).wait(FunctionName=name)  # type: ignore[call-overload]
    except AwsError as exc:
        state = "active" if waiter == ACTIVE else "updated"
        raise DeployError(
            f"{FUNCTION} {name}: did not become {state} ({exc.aws_message}); "
            "see its State / LastUpdateStatus reason (aws lambda get-function), then deploy again"
        ) from None


def function_step(ctx: Context, role: str, package: LambdaZip) -> Step:
    """Create the function, or update its code (when CodeSha256 differs) and settings."""
    lam, name = ctx.aws.lambda_(), ctx.names.function(role)
    key = f"function:{role}"
    wanted = desired_settings(ctx, role)
    changes: list[str] = []
    with ctx.reading(FUNCTION, name):
        found = optional(lambda: lam.get_function(FunctionName=name))
        if found is not None:
            tags = dict(found.get("Tags", {}))
            ctx.check_owned(key, FUNCTION, name, tags)
            actual: dict[str, Any] = dict(found["Configuration"])
            actual.setdefault("Environment", {"Variables": {}})
            changes += [k.lower() for k, v in wanted.items() if actual.get(k) != v]
            arch = ctx.cfg.lambda_.architecture
            if actual.get("CodeSha256") != package.code_sha256 or actual.get(
                "Architectures", ["x86_64"]
            ) != [arch]:
                changes.insert(0, "code")
            if ctx.missing_tags(tags):
                changes.append("tags")

    def apply() -> None:
        if found is None:
            ctx.retry_iam(
                lambda: lam.create_function(
                    FunctionName=name,
                    Code={"ZipFile": package.data},
                    Tags=ctx.tags,
                    Publish=False,
                    Architectures=[ctx.cfg.lambda_.architecture],
                    **wanted,
                ),
                _role_not_ready,
            )
            ctx.state.remember(key, name=name, arn=ctx.names.function_arn(role))
            wait_for(ctx, ACTIVE, name)
            return
        if "code" in changes:
            wait_for(ctx, UPDATED, name)  # an update a stopped deploy left running
            lam.update_function_code(
                FunctionName=name,
                ZipFile=package.data,
                Architectures=[ctx.cfg.lambda_.architecture],
            )
            wait_for(ctx, UPDATED, name)
        if set(changes) - {"code", "tags"}:
            wait_for(ctx, UPDATED, name)
            ctx.retry_iam(
                lambda: lam.update_function_configuration(FunctionName=name, **wanted),
                _role_not_ready,
            )
            wait_for(ctx, UPDATED, name)
        if "tags" in changes:
            lam.tag_resource(Resource=ctx.names.function_arn(role), Tags=ctx.tags)

    ids = {"name": name, "arn": ctx.names.function_arn(role)}
    lam_cfg = ctx.cfg.lambda_
    settings = (
        str(wanted["Runtime"]),
        ctx.cfg.lambda_.architecture,
        f"{wanted['Timeout']} s",
        f"{wanted['MemorySize']} MB",
        *([f"/tmp {lam_cfg.plan_ephemeral_mb} MB"] if role == "plan" else []),
        f"code {package.code_sha256[:8]}",
    )
    exists = found is not None
    return step(key, FUNCTION, name, changes, apply, exists=exists, ids=ids, settings=settings)


def function_steps(ctx: Context, package: LambdaZip) -> list[Step]:
    """A step for each function: the state machine's three and the API's submit."""
    return [function_step(ctx, role, package) for role in LAMBDA_ROLES]
