"""Teardown keeps images and index rows unless told to delete them."""

from __future__ import annotations

from collections.abc import Callable

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeploymentOutputs, DeployResult
from imgflow.aws.deploy.state import load_outputs, load_state, state_path
from imgflow.aws.teardown import teardown
from imgflow.config import Config


def _add_data(aws: Aws, outputs: DeploymentOutputs) -> None:
    aws.s3().put_object(Bucket=outputs.bucket, Key="images/example.com/a.jpg", Body=b"jpg")
    aws.dynamodb().put_item(
        TableName=outputs.table, Item={"url": {"S": "https://example.com/a.jpg"}}
    )


def _bucket_exists(aws: Aws, bucket: str) -> bool:
    return any(b["Name"] == bucket for b in aws.s3().list_buckets()["Buckets"])


def test_empty_deployment_is_removed_completely(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    result = teardown(deploy_cfg, aws)
    assert result.kept == []
    assert len(result.deleted) == 19
    kinds = [kind for kind, _ in result.deleted]
    # each log group after what writes to it
    assert kinds[:7] == ["http api", "state machine", "log group", *["lambda function"] * 4]
    assert kinds[7:11] == ["log group"] * 4
    assert kinds[-1] == "s3 bucket"
    assert not _bucket_exists(aws, deployed.bucket)
    assert aws.dynamodb().list_tables()["TableNames"] == []
    assert aws.logs().describe_log_groups()["logGroups"] == []
    assert not state_path(deploy_cfg).exists()


def test_data_is_kept_without_delete_data(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    _add_data(aws, deployed)
    result = teardown(deploy_cfg, aws)
    kept = {(kind, name) for kind, name, _ in result.kept}
    assert kept == {("s3 bucket", deployed.bucket), ("dynamodb table", deployed.table)}
    assert all("--delete-data" in reason for _, _, reason in result.kept)
    assert _bucket_exists(aws, deployed.bucket)
    assert aws.dynamodb().list_tables()["TableNames"] == [deployed.table]
    assert aws.lambda_().list_functions()["Functions"] == []
    assert aws.logs().describe_log_groups()["logGroups"] == []  # logs are not data
    assert set(load_state(deploy_cfg).resources) == {"bucket", "table"}
    assert load_outputs(deploy_cfg) is None

    again = teardown(deploy_cfg, aws, delete_data=True)
    assert {kind for kind, _ in again.deleted} == {"s3 bucket", "dynamodb table"}
    assert again.kept == []
    assert not _bucket_exists(aws, deployed.bucket)
    assert not state_path(deploy_cfg).exists()


def test_teardown_without_state_file_finds_tagged_resources(
    aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs
) -> None:
    state_path(deploy_cfg).unlink()
    result = teardown(deploy_cfg, aws, delete_data=True)
    assert len(result.deleted) == 19
    assert aws.logs().describe_log_groups()["logGroups"] == []


def test_teardown_leaves_other_deployments_alone(
    aws: Aws,
    make_cfg: Callable[..., Config],
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    deployed: DeploymentOutputs,
) -> None:
    other = run_deploy(make_cfg()).outputs
    teardown(deploy_cfg, aws, delete_data=True)
    assert _bucket_exists(aws, other.bucket)
    assert len(aws.lambda_().list_functions()["Functions"]) == 4
    groups = aws.logs().describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == [
        *(
            f"/aws/lambda/{other.deployment}-{role}"
            for role in ("consolidate", "download", "plan", "submit")
        ),
        f"/aws/vendedlogs/states/{other.deployment}-pipeline",
    ]
