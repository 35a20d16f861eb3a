"""Deploy into moto, then read every resource back."""

from __future__ import annotations

import json
from collections.abc import Callable

import botocore.exceptions
import pytest

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeploymentOutputs, DeployResult
from imgflow.aws.deploy.state import load_outputs
from imgflow.config import Config, with_overrides
from infra.names import TAG_KEY


def test_bucket_is_private_encrypted_tls_only_with_lifecycle(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    s3, bucket = aws.s3(), deployed.bucket
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    glacier = [r["Transitions"] for r in lifecycle if "Transitions" in r]
    assert glacier == [[{"Days": 1, "StorageClass": "GLACIER_IR"}]]
    tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {"Key": TAG_KEY, "Value": deploy_cfg.deployment} in tags


def test_table_topic_and_subscriptions(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    table = aws.dynamodb().describe_table(TableName=deployed.table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "url", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    sns = aws.sns()
    attributes = sns.get_topic_attributes(TopicArn=deployed.topic_arn)["Attributes"]
    assert attributes["KmsMasterKeyId"] == "alias/aws/sns"
    subs = sns.list_subscriptions_by_topic(TopicArn=deployed.topic_arn)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "ops@example.com")]
    tags = sns.list_tags_for_resource(ResourceArn=deployed.topic_arn)["Tags"]
    assert {"Key": TAG_KEY, "Value": deploy_cfg.deployment} in tags


def test_functions_have_runtime_timeout_memory_env_and_tags(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    lam = aws.lambda_()
    for role, arn in deployed.functions.items():
        found = lam.get_function(FunctionName=arn)
        config = found["Configuration"]
        assert config["Runtime"] == "python3.12"
        assert config["Handler"] == f"lambdas.{role}.handler"
        assert config["Timeout"] == deploy_cfg.lambda_.timeout == 300
        expected_memory = {"plan": 512, "consolidate": 512, "download": 1024, "submit": 256}[role]
        assert config["MemorySize"] == expected_memory
        assert config["Role"] == deployed.roles[role]
        env = config["Environment"]["Variables"]
        assert env["IMGFLOW_BUCKET"] == deployed.bucket
        assert env["IMGFLOW_TABLE"] == deployed.table
        assert env["IMGFLOW_TOPIC_ARN"] == deployed.topic_arn
        assert env["IMGFLOW_DEPLOYMENT"] == deploy_cfg.deployment
        assert json.loads(env["IMGFLOW_FETCH_SETTINGS"])["timeout"] == 10.0
        assert env["IMGFLOW_ALLOW_PRIVATE_TARGETS"] == "false"
        assert env["IMGFLOW_LAYOUT"] == "files"  # output.layout (webdataset: a shard a batch)
        assert found["Tags"][TAG_KEY] == deploy_cfg.deployment


def test_log_groups_are_tagged_with_retention_and_made_before_their_functions(
    aws: Aws, deploy_cfg: Config, run_deploy: Callable[..., DeployResult], mutations: list[str]
) -> None:
    result = run_deploy(deploy_cfg)
    logs = aws.logs()
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    names = [f"/aws/lambda/{deploy_cfg.deployment}-{role}" for role in result.outputs.functions]
    assert sorted(g["logGroupName"] for g in groups) == sorted(names)
    assert {g["retentionInDays"] for g in groups} == {deploy_cfg.lambda_.log_retention_days} == {30}
    for group in groups:
        tags = logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"]
        assert tags == {TAG_KEY: deploy_cfg.deployment}
    assert mutations.index("CreateLogGroup") < mutations.index("CreateFunction")
    kinds = [s.kind for s in result.plan.steps]
    assert kinds.index("log group") < kinds.index("lambda function")
    assert kinds.count("log group") == 5  # four functions' and the state machine's


def test_log_groups_without_retention_never_expire(
    aws: Aws, make_cfg: Callable[..., Config], run_deploy: Callable[..., DeployResult]
) -> None:
    cfg = make_cfg(**{"lambda": {"log_retention_days": None}})
    run_deploy(cfg)
    groups = aws.logs().describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    assert len(groups) == 4 and all("retentionInDays" not in g for g in groups)


def test_state_machine_and_api(aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs) -> None:
    sfn = aws.stepfunctions()
    machine = sfn.describe_state_machine(stateMachineArn=deployed.state_machine_arn)
    assert machine["roleArn"] == deployed.roles["statemachine"]
    assert json.loads(machine["definition"])["StartAt"] == "Plan"
    api = aws.apigatewayv2()
    assert deployed.api_id and deployed.api_url and deployed.api_url.endswith("/jobs")
    routes = api.get_routes(ApiId=deployed.api_id)["Items"]
    assert [(r["RouteKey"], r["AuthorizationType"]) for r in routes] == [("POST /jobs", "AWS_IAM")]
    integration_id = routes[0]["Target"].removeprefix("integrations/")
    integration = api.get_integration(ApiId=deployed.api_id, IntegrationId=integration_id)
    assert (integration["IntegrationType"], integration["PayloadFormatVersion"]) == (
        "AWS_PROXY",
        "2.0",
    )
    assert integration["IntegrationUri"] == deployed.functions["submit"]
    assert "IntegrationSubtype" not in integration and "CredentialsArn" not in integration
    policy = json.loads(
        aws.lambda_().get_policy(FunctionName=deployed.functions["submit"])["Policy"]
    )
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == (
        f"arn:aws:execute-api:us-east-1:{deployed.account}:{deployed.api_id}/*/POST/jobs"
    )


def test_outputs_are_saved_in_the_state_file(
    deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    assert load_outputs(deploy_cfg) == deployed


def test_second_deploy_makes_no_mutating_call(
    run_deploy: Callable[..., DeployResult], deploy_cfg: Config, mutations: list[str]
) -> None:
    first = run_deploy(deploy_cfg)
    assert all(step.action == "create" for step in first.plan.steps)
    created = list(mutations)
    mutations.clear()
    second = run_deploy(deploy_cfg)
    assert mutations == []
    assert [s.action for s in second.plan.steps] == ["no change"] * len(first.plan.steps)
    assert second.outputs == first.outputs
    assert len(created) == 39
    assert created.count("CreateRole") == 5  # four functions and the state machine: no API role
    assert created.count("CreateLogGroup") == 5 and created.count("PutRetentionPolicy") == 5
    assert created.count("AddPermission") == 1


def test_state_is_saved_after_every_step(
    run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> None:
    from imgflow.aws.deploy import Step
    from imgflow.aws.deploy.state import load_state

    on_disk: list[bool] = []

    def check(step: Step) -> None:
        on_disk.append(step.key in load_state(deploy_cfg).resources)

    run_deploy(deploy_cfg, on_step=check)
    assert on_disk == [True] * 19


def test_tls_only_off_for_emulators_removes_the_policy_and_warns(
    aws: Aws, make_cfg: Callable[..., Config], run_deploy: Callable[..., DeployResult]
) -> None:
    cfg = make_cfg(storage={"tls_only": False})
    result = run_deploy(cfg)
    assert any("storage.tls_only is false" in w for w in result.plan.warnings)
    bucket = result.outputs.bucket
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchBucketPolicy"):
        aws.s3().get_bucket_policy(Bucket=bucket)
    again = run_deploy(with_overrides(cfg, storage={"tls_only": True}))
    bucket_step = next(s for s in again.plan.steps if s.kind == "s3 bucket")
    assert bucket_step.changes == ("TLS-only policy",)
    assert not again.plan.warnings
    assert "aws:SecureTransport" in aws.s3().get_bucket_policy(Bucket=bucket)["Policy"]


def test_state_machine_logs_errors_by_default_and_xray_on_request(
    aws: Aws, make_cfg: Callable[..., Config], run_deploy: Callable[..., DeployResult]
) -> None:
    cfg = make_cfg()
    outputs = run_deploy(cfg).outputs
    sfn = aws.stepfunctions()
    described = sfn.describe_state_machine(stateMachineArn=outputs.state_machine_arn)
    group = (
        "arn:aws:logs:us-east-1:123456789012:log-group:"
        f"/aws/vendedlogs/states/{cfg.deployment}-pipeline:*"
    )
    assert described["loggingConfiguration"] == {
        "level": "ERROR",
        "includeExecutionData": False,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group}}],
    }
    assert described["tracingConfiguration"] == {"enabled": False}
    traced = with_overrides(cfg, aws={"sfn_log_level": "ALL", "xray": True})
    result = run_deploy(traced)
    machine = next(s for s in result.plan.steps if s.kind == "state machine")
    assert machine.changes == ("logging", "tracing")
    described = sfn.describe_state_machine(stateMachineArn=outputs.state_machine_arn)
    assert described["loggingConfiguration"]["level"] == "ALL"
    assert described["tracingConfiguration"] == {"enabled": True}
    assert [s.action for s in run_deploy(traced).plan.steps] == ["no change"] * 19
