"""The API's former integration role (`<name>-api`): since the job route invokes the submit
Lambda, deploy no longer makes it; a redeploy of an older deployment deletes it (its inline
policy first, as IAM requires), and teardown still removes one left behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from test_deploy_resilience import fail_on, tagged_resources

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeploymentOutputs, DeployResult
from imgflow.aws.teardown import teardown
from imgflow.config import Config
from imgflow.errors import DeployError
from infra.names import TAG_KEY


def make_former_role(aws: Aws, deployment: str, state_machine_arn: str) -> str:
    """The role an older deploy made for the API's StartExecution integration."""
    iam, name = aws.iam(), f"{deployment}-api"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    start = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartJobs",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": [state_machine_arn],
            }
        ],
    }
    iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": TAG_KEY, "Value": deployment}],
    )
    iam.put_role_policy(RoleName=name, PolicyName="imgflow", PolicyDocument=json.dumps(start))
    return name


def role_names(aws: Aws, deployment: str) -> set[str]:
    return {r["RoleName"] for r in aws.iam().list_roles()["Roles"] if deployment in r["RoleName"]}


def test_iam_refuses_to_delete_a_role_that_still_has_a_policy(aws: Aws) -> None:
    """What the double (moto's IAM) refuses, as IAM does (DeleteRole, IAM API reference):
    a role with an inline policy, an attached managed policy or an instance profile."""
    name = make_former_role(aws, "refused", "arn:aws:states:us-east-1:1:stateMachine:x")
    with pytest.raises(ClientError) as refused:
        aws.iam().delete_role(RoleName=name)
    assert refused.value.response["Error"]["Code"] == "DeleteConflict"


def test_a_redeploy_of_an_older_deployment_deletes_its_api_role(
    aws: Aws,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    deployed: DeploymentOutputs,
    mutations: list[str],
) -> None:
    """A first deploy makes no role for API Gateway; a redeploy of a deployment that has
    one deletes its policy, then the role (a redeploy stopped between the two finishes)."""
    deployment = deploy_cfg.deployment
    purposes = ("plan", "download", "consolidate", "submit", "statemachine")
    assert role_names(aws, deployment) == {f"{deployment}-{p}" for p in purposes}
    assert set(deployed.roles) == set(purposes)
    name = make_former_role(aws, deployment, deployed.state_machine_arn)
    fail_on(aws, "DeleteRole")
    with pytest.raises(DeployError, match="InternalFailure"):
        run_deploy(deploy_cfg)
    assert aws.iam().list_role_policies(RoleName=name)["PolicyNames"] == []
    mutations.clear()
    result = run_deploy(deploy_cfg)
    (step,) = [s for s in result.plan.steps if s.action != "no change"]
    assert (step.kind, step.name, step.action) == ("iam role", name, "delete")
    assert mutations == ["DeleteRole"]
    assert name not in role_names(aws, deployment)
    assert {s.action for s in run_deploy(deploy_cfg).plan.steps} == {"no change"}


def test_a_role_with_the_name_but_not_ours_is_left_alone(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> None:
    name = f"{deploy_cfg.deployment}-api"
    aws.iam().create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    plan = run_deploy(deploy_cfg, dry_run=True).plan
    assert ("iam role", name) not in [(s.kind, s.name) for s in plan.steps]
    teardown(deploy_cfg, aws, delete_data=True)
    assert role_names(aws, deploy_cfg.deployment) == {name}


def test_teardown_removes_the_api_role_an_older_deployment_left(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    make_former_role(aws, deploy_cfg.deployment, deployed.state_machine_arn)
    teardown(deploy_cfg, aws, delete_data=True)
    assert tagged_resources(aws, deploy_cfg.deployment) == []
    assert role_names(aws, deploy_cfg.deployment) == set()


def test_the_plan_says_what_it_deletes() -> None:
    from imgflow.aws.deploy import Step
    from imgflow.ui.deploy import plan_counts, plan_summary, step_line

    steps = (
        Step("role:plan", "iam role", "d-plan", "no change"),
        Step("role:api", "iam role", "d-api", "delete", ("no longer used",)),
    )
    assert plan_counts(steps) == {"create": 0, "update": 0, "unchanged": 1, "delete": 1}
    assert plan_summary(steps) == "0 to create, 0 to update, 1 unchanged, 1 to delete"
    assert step_line(steps[1]) == "deleted iam role d-api (no longer used)"
    assert "delete" not in plan_counts(steps[:1])
