"""Deploy when things go wrong: failures midway, a lost state file, changed config, dry runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeployResult
from imgflow.aws.deploy.state import load_state, state_path
from imgflow.aws.teardown import teardown
from imgflow.config import Config
from imgflow.errors import DeployError
from infra.names import TAG_KEY


def fail_on(
    aws: Aws, operation: str, code: str = "InternalFailure", message: str = "injected"
) -> None:
    """Make the next `operation` call through `aws` fail with AWS error `code` (once)."""
    armed = [True]

    def hook(name: str, params: dict[str, Any]) -> None:
        if name == operation and armed[0]:
            armed[0] = False
            raise ClientError({"Error": {"Code": code, "Message": message}}, operation)

    aws.on_call(hook)


def tagged_resources(aws: Aws, deployment: str) -> list[str]:
    """Every resource in the mock carrying imgflow:deployment=<deployment> (and any bucket
    named after the deployment, tagged or not)."""
    found: list[str] = []
    s3 = aws.s3()
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        try:
            tags = s3.get_bucket_tagging(Bucket=name)["TagSet"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchTagSet":
                raise
            tags = []  # created but not yet tagged: still this deployment's if named so
        if {"Key": TAG_KEY, "Value": deployment} in tags or name.startswith(f"{deployment}-"):
            found.append(name)
    ddb = aws.dynamodb()
    for table in ddb.list_tables()["TableNames"]:
        arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
        if {"Key": TAG_KEY, "Value": deployment} in ddb.list_tags_of_resource(ResourceArn=arn)[
            "Tags"
        ]:
            found.append(table)
    sns = aws.sns()
    for topic in sns.list_topics()["Topics"]:
        tags = sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"]
        if {"Key": TAG_KEY, "Value": deployment} in tags:
            found.append(topic["TopicArn"])
    iam = aws.iam()
    for role in iam.list_roles()["Roles"]:
        if {"Key": TAG_KEY, "Value": deployment} in iam.list_role_tags(RoleName=role["RoleName"])[
            "Tags"
        ]:
            found.append(role["RoleName"])
    lam = aws.lambda_()
    for function in lam.list_functions()["Functions"]:
        if lam.list_tags(Resource=function["FunctionArn"])["Tags"].get(TAG_KEY) == deployment:
            found.append(function["FunctionName"])
    sfn = aws.stepfunctions()
    for machine in sfn.list_state_machines()["stateMachines"]:
        sfn_tags = sfn.list_tags_for_resource(resourceArn=machine["stateMachineArn"])["tags"]
        if {"key": TAG_KEY, "value": deployment} in sfn_tags:
            found.append(machine["name"])
    for api in aws.apigatewayv2().get_apis()["Items"]:
        if api.get("Tags", {}).get(TAG_KEY) == deployment:
            found.append(api["Name"])
    logs = aws.logs()
    for group in logs.describe_log_groups()["logGroups"]:
        if (
            logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"].get(TAG_KEY)
            == deployment
        ):
            found.append(group["logGroupName"])
    return found


@pytest.mark.parametrize(
    ("operation", "resource"),
    [
        ("PutBucketPolicy", "s3 bucket"),
        ("CreateRole", "iam role"),
        ("PutRetentionPolicy", "log group"),
        ("CreateFunction", "lambda function"),
        ("CreateIntegration", "http api"),
    ],
)
def test_failure_midway_names_resource_then_converges_and_tears_down(
    aws: Aws,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    mutations: list[str],
    operation: str,
    resource: str,
) -> None:
    fail_on(aws, operation)
    with pytest.raises(DeployError) as caught:
        run_deploy(deploy_cfg)
    message = str(caught.value)
    head = message.split(": ", 1)[0]  # "<kind> <name>"
    assert head.startswith(f"{resource} ") and deploy_cfg.deployment in head
    assert operation in message and "InternalFailure" in message and "\n" not in message
    assert "imgflow deploy" in message  # what to try
    assert load_state(deploy_cfg).resources  # what was made before the failure is on disk

    again = run_deploy(deploy_cfg)
    assert again.outputs.api_url
    mutations.clear()
    assert all(s.action == "no change" for s in run_deploy(deploy_cfg).plan.steps)
    assert mutations == []
    teardown(deploy_cfg, aws)
    assert tagged_resources(aws, deploy_cfg.deployment) == []


def test_teardown_after_partial_deploy_leaves_nothing(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> None:
    fail_on(aws, "CreateStateMachine")
    with pytest.raises(DeployError, match="state machine"):
        run_deploy(deploy_cfg)
    assert tagged_resources(aws, deploy_cfg.deployment)
    result = teardown(deploy_cfg, aws)
    assert result.kept == []
    assert tagged_resources(aws, deploy_cfg.deployment) == []
    assert not state_path(deploy_cfg).exists()
    assert teardown(deploy_cfg, aws).deleted == []  # a second teardown is a no-op


def test_lost_state_file_adopts_instead_of_duplicating(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config, mutations: list[str]
) -> None:
    first = run_deploy(deploy_cfg)
    state_path(deploy_cfg).unlink()
    mutations.clear()
    again = run_deploy(deploy_cfg)
    assert mutations == []
    assert again.outputs == first.outputs
    assert len(aws.apigatewayv2().get_apis()["Items"]) == 1
    assert state_path(deploy_cfg).exists()


def test_log_groups_lambda_made_are_adopted_and_tagged(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config, mutations: list[str]
) -> None:
    logs, name = aws.logs(), f"/aws/lambda/{deploy_cfg.deployment}-download"
    logs.create_log_group(logGroupName=name)  # as Lambda makes it: untagged, kept forever
    mutations.clear()
    result = run_deploy(deploy_cfg)
    step = next(s for s in result.plan.steps if s.name == name)
    assert (step.action, step.changes) == ("update", ("retention", "tags"))
    assert mutations.count("CreateLogGroup") == 4  # the three others and the state machine's
    arn = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["logGroupArn"]
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {TAG_KEY: deploy_cfg.deployment}
    teardown(deploy_cfg, aws)
    assert tagged_resources(aws, deploy_cfg.deployment) == []
    assert logs.describe_log_groups()["logGroups"] == []


def test_untagged_resource_with_our_name_is_not_adopted(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> None:
    aws.iam().create_role(RoleName=f"{deploy_cfg.deployment}-plan", AssumeRolePolicyDocument="{}")
    with pytest.raises(DeployError, match="not tagged"):
        run_deploy(deploy_cfg)


def test_changed_config_updates_in_place(
    aws: Aws,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    mutations: list[str],
) -> None:
    run_deploy(deploy_cfg)
    changed = dataclasses.replace(
        deploy_cfg,
        lambda_=dataclasses.replace(deploy_cfg.lambda_, timeout=600, log_retention_days=7),
        storage=dataclasses.replace(deploy_cfg.storage, glacier_after_days=None),
        api=dataclasses.replace(deploy_cfg.api, auth="none"),
        notify=dataclasses.replace(deploy_cfg.notify, emails=("oncall@example.com",)),
    )
    mutations.clear()
    result = run_deploy(changed)
    updates = {s.name: s.changes for s in result.plan.steps if s.action == "update"}
    name = deploy_cfg.deployment
    assert updates[f"{name}-download"] == ("timeout",)
    assert updates[f"{name}-api"] == ("route",)
    assert updates[f"/aws/lambda/{name}-plan"] == ("retention",)
    assert "lifecycle" in updates[result.outputs.bucket]
    assert updates[f"{name}-failures"] == (
        "subscribe oncall@example.com",
        "unsubscribe ops@example.com",
    )
    assert not any(s.action == "create" for s in result.plan.steps)
    assert result.plan.warnings and "api.auth" in result.plan.warnings[0]
    assert "UpdateFunctionConfiguration" in mutations
    assert "UpdateFunctionCode" not in mutations
    assert mutations.count("PutRetentionPolicy") == 5
    groups = aws.logs().describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}-")
    assert {g["retentionInDays"] for g in groups["logGroups"]} == {7}
    route = aws.apigatewayv2().get_routes(ApiId=result.outputs.api_id or "")["Items"][0]
    assert route["AuthorizationType"] == "NONE"
    mutations.clear()
    assert all(s.action == "no change" for s in run_deploy(changed).plan.steps)
    assert mutations == []


def test_changed_code_is_uploaded(
    aws: Aws,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    mutations: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_deploy(deploy_cfg)
    from imgflow.aws import zips

    real = zips.project_files

    def with_extra() -> dict[str, Any]:
        files = real()
        files["lambdas/extra.py"] = files["lambdas/__init__.py"]
        return files

    monkeypatch.setattr(zips, "project_files", with_extra)
    mutations.clear()
    result = run_deploy(deploy_cfg)
    assert [s.changes for s in result.plan.steps if s.action == "update"] == [("code",)] * 4
    assert mutations == ["UpdateFunctionCode"] * 4


def test_dry_run_makes_no_mutating_call(
    run_deploy: Callable[..., DeployResult], deploy_cfg: Config, mutations: list[str]
) -> None:
    result = run_deploy(deploy_cfg, dry_run=True)
    assert result.dry_run
    assert mutations == []
    assert {s.action for s in result.plan.steps} == {"create"}
    assert not state_path(deploy_cfg).exists()


def test_iam_propagation_is_retried_with_the_injected_sleep(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> None:
    fail_on(
        aws,
        "CreateFunction",
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.",
    )
    slept: list[float] = []
    result = run_deploy(deploy_cfg, sleep=slept.append)
    assert result.outputs.functions
    assert slept == [1.0]


def test_discover_finds_the_deployment_without_its_state_file(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> None:
    from imgflow.aws.deploy import discover, load_outputs

    assert discover(deploy_cfg, aws) is None
    first = run_deploy(deploy_cfg)
    state_path(deploy_cfg).unlink()
    assert load_outputs(deploy_cfg) is None
    assert discover(deploy_cfg, aws) == first.outputs
    assert not state_path(deploy_cfg).exists()
