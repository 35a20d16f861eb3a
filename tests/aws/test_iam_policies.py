"""IAM policies: least privilege, checked with moto's policy evaluator.

Expected ARNs are written out literally (never built with infra.names, which the policies
themselves are built from). The pipeline test at the bottom records every call each role
makes on moto (botocore event hooks, each handler under its own role's credentials) and
evaluates the deployed policy against each: all allowed, and one call each role does not
need refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lambda_invoke import patched
from moto.iam.access_control import IAMPolicy, PermissionResult
from pipeline_env import deploy_pipeline, pipeline_config, reference_body
from support.aws_moto import run_execution, wait_for_execution
from support.aws_roles import CallLog

from imgflow.aws.client import Aws
from imgflow.aws.job import start_job
from imgflow.demo.server import StaticServer
from infra import iam
from infra.names import Names

NAMES = Names("demo", "123456789012", "us-east-1")
OTHER = Names("other", "123456789012", "us-east-1")
PREFIX = "images/"

BUCKET = "arn:aws:s3:::demo-images-eb805c6c"
OTHER_BUCKET = "arn:aws:s3:::other-images-eb805c6c"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/demo-index"
OTHER_TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/other-index"
TOPIC = "arn:aws:sns:us-east-1:123456789012:demo-failures"
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:demo-pipeline"
OTHER_STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:other-pipeline"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:demo-pipeline:run-1"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:demo-{}"
LOG_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/demo-{}"
ROLES = ("plan", "download", "consolidate")


def _allowed(policy: iam.Policy, action: str, resource: str) -> bool:
    evaluator = IAMPolicy(json.dumps(policy))
    return evaluator.is_action_permitted(action, resource) == PermissionResult.PERMITTED


def _all_policies() -> dict[str, iam.Policy]:
    return {purpose: policy for purpose, (_, policy) in iam.role_policies(NAMES, PREFIX).items()}


RESOURCE_LESS = {"DeliverLogs", "Traces"}  # AWS documents these as "Resource": "*" only


@pytest.mark.parametrize("purpose", ["plan", "download", "consolidate", "submit", "statemachine"])
def test_no_wildcard_resource_outside_logs(purpose: str) -> None:
    policies = iam.role_policies(NAMES, PREFIX, logging=True, xray=True)
    for statement in policies[purpose][1]["Statement"]:
        assert "*" not in statement["Action"] and not any(
            a.endswith(":*") for a in statement["Action"]
        )
        if statement["Sid"] in RESOURCE_LESS:
            assert statement["Resource"] == ["*"]
            assert all(a.startswith(("logs:", "xray:")) for a in statement["Action"])
            continue
        for resource in statement["Resource"]:
            assert resource != "*"
            head = resource.split("*", 1)[0]
            assert "demo" in head, f"{purpose}: {resource} is not scoped to the deployment"
            if "*" in resource and not resource.startswith("arn:aws:logs:"):
                assert resource.endswith(("/*", ":*", f"/{PREFIX}*")), resource


def test_log_delivery_and_tracing_only_when_turned_on() -> None:
    def sids(**options: bool) -> set[str]:
        policy = iam.state_machine_policy(NAMES, **options)
        return {s["Sid"] for s in policy["Statement"]}

    assert sids(logging=False, xray=False) & RESOURCE_LESS == set()
    assert sids(logging=True, xray=False) & RESOURCE_LESS == {"DeliverLogs"}
    assert sids(logging=True, xray=True) & RESOURCE_LESS == {"DeliverLogs", "Traces"}


def test_download_role_writes_its_bucket_and_table_only() -> None:
    policy = iam.download_policy(NAMES, PREFIX)
    assert _allowed(policy, "s3:PutObject", f"{BUCKET}/images/example.com/a.jpg")
    assert _allowed(policy, "s3:PutObject", f"{BUCKET}/jobs/run-1/results/0.json")
    assert _allowed(policy, "s3:GetObject", f"{BUCKET}/jobs/run-1/batches/000001.json")
    assert not _allowed(policy, "s3:GetObject", f"{BUCKET}/jobs/run-1/job.json")
    # each host's robots.txt answer, kept for the job's later batches
    assert _allowed(policy, "s3:GetObject", f"{BUCKET}/jobs/run-1/robots/ab12.json")
    assert _allowed(policy, "s3:PutObject", f"{BUCKET}/jobs/run-1/robots/ab12.json")
    assert not _allowed(policy, "s3:GetObject", f"{BUCKET}/jobs/run-1/results/0.json")
    assert not _allowed(policy, "s3:ListBucket", BUCKET)
    assert not _allowed(policy, "s3:PutObject", f"{OTHER_BUCKET}/images/a.jpg")
    assert not _allowed(policy, "s3:PutObject", f"{BUCKET}/elsewhere/a.jpg")
    assert not _allowed(policy, "s3:DeleteObject", f"{BUCKET}/images/a.jpg")
    assert _allowed(policy, "dynamodb:BatchWriteItem", TABLE)
    assert _allowed(policy, "dynamodb:BatchGetItem", TABLE)
    assert not _allowed(policy, "dynamodb:BatchWriteItem", OTHER_TABLE)
    for unused in ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteTable"):
        assert not _allowed(policy, unused, TABLE)
    assert not _allowed(policy, "sns:Publish", TOPIC)


def test_the_download_role_writes_shards_only_with_a_shard_layout() -> None:
    shard = f"{BUCKET}/shards/run-1/00000.tar"
    files = iam.download_policy(NAMES, PREFIX)
    sharded = iam.download_policy(NAMES, PREFIX, shards=True)
    for action in ("s3:PutObject", "s3:AbortMultipartUpload"):
        assert not _allowed(files, action, shard)
        assert _allowed(sharded, action, shard)
        assert not _allowed(sharded, action, f"{OTHER_BUCKET}/shards/run-1/00000.tar")
    assert not _allowed(files, "s3:GetObject", shard)
    assert _allowed(sharded, "s3:GetObject", shard)  # a retried batch reads its old shard
    assert not _allowed(sharded, "s3:GetObject", f"{BUCKET}/jobs/run-1/job.json")
    assert not _allowed(sharded, "s3:DeleteObject", shard)
    assert not _allowed(sharded, "s3:PutObject", f"{BUCKET}/elsewhere/a.tar")


def test_submit_role_starts_its_state_machine_only() -> None:
    policy = iam.submit_policy(NAMES)
    assert _allowed(policy, "states:StartExecution", STATE_MACHINE)
    assert not _allowed(policy, "states:StartExecution", OTHER_STATE_MACHINE)
    assert not _allowed(policy, "states:StopExecution", STATE_MACHINE)


def test_state_machine_role_invokes_its_functions_and_map_runs() -> None:
    policy = iam.state_machine_policy(NAMES)
    for role in ROLES:
        assert _allowed(policy, "lambda:InvokeFunction", FUNCTION.format(role))
        assert _allowed(policy, "lambda:InvokeFunction", FUNCTION.format(role) + ":$LATEST")
        other = FUNCTION.format(role).replace("demo-", "other-")
        assert not _allowed(policy, "lambda:InvokeFunction", other)
    assert _allowed(policy, "sns:Publish", TOPIC)
    assert not _allowed(policy, "sns:Publish", TOPIC.replace("demo-", "other-"))
    assert _allowed(policy, "s3:GetObject", f"{BUCKET}/jobs/run-1/batches.json")
    assert _allowed(policy, "s3:PutObject", f"{BUCKET}/jobs/_map-results/x/manifest.json")
    assert not _allowed(policy, "s3:GetObject", f"{BUCKET}/images/a.jpg")
    assert not _allowed(policy, "s3:ListBucket", BUCKET)
    assert _allowed(policy, "states:StartExecution", STATE_MACHINE)
    assert _allowed(policy, "states:DescribeExecution", EXECUTION)
    assert not _allowed(policy, "states:StartExecution", OTHER_STATE_MACHINE)


def test_plan_and_consolidate_roles_stay_under_jobs() -> None:
    for policy in (iam.plan_policy(NAMES), iam.consolidate_policy(NAMES)):
        assert _allowed(policy, "s3:PutObject", f"{BUCKET}/jobs/run-1/batches.json")
        assert not _allowed(policy, "s3:PutObject", f"{BUCKET}/images/a.jpg")
        assert not _allowed(policy, "s3:PutObject", f"{OTHER_BUCKET}/jobs/x")
    consolidate = iam.consolidate_policy(NAMES)
    [listing] = [s for s in consolidate["Statement"] if s["Sid"] == "ListJobs"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["jobs/*"]}}
    for action in ("dynamodb:GetItem", "dynamodb:BatchGetItem"):
        assert not _allowed(consolidate, action, TABLE)


@pytest.mark.parametrize("role", ROLES)
def test_function_roles_write_only_their_own_log_group(role: str) -> None:
    policy = _all_policies()[role]
    logs = [s for s in policy["Statement"] if any(a.startswith("logs:") for a in s["Action"])]
    group = LOG_GROUP.format(role)
    assert logs == [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{group}:*"],
        }
    ]
    own = f"{group}:log-stream:2024/01/01/[$LATEST]abc"
    assert _allowed(policy, "logs:CreateLogStream", own)
    assert _allowed(policy, "logs:PutLogEvents", own)
    for other in (
        *(LOG_GROUP.format(r) for r in ROLES if r != role),
        LOG_GROUP.format(role).replace("/demo-", "/other-"),
        f"{group}-x",  # a group whose name merely starts like ours
    ):
        assert not _allowed(policy, "logs:PutLogEvents", f"{other}:log-stream:s")
    # deploy creates, tags, retains and deletes the group; the function only writes to it
    for action in ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy"):
        assert not _allowed(policy, action, f"{group}:*")


def test_trust_policies_name_the_service_and_this_account_only() -> None:
    trusts = {
        p: iam.trust_policy(s, NAMES) for p, (s, _) in iam.role_policies(NAMES, PREFIX).items()
    }
    services = {p: t["Statement"][0]["Principal"]["Service"] for p, t in trusts.items()}
    assert services == {
        "plan": "lambda.amazonaws.com",
        "download": "lambda.amazonaws.com",
        "consolidate": "lambda.amazonaws.com",
        "submit": "lambda.amazonaws.com",
        "statemachine": "states.amazonaws.com",
    }  # no role trusts API Gateway: the job route invokes the submit Lambda
    for purpose, trust in trusts.items():
        condition = trust["Statement"][0]["Condition"]
        assert condition["StringEquals"] == {"aws:SourceAccount": "123456789012"}, purpose
    assert trusts["statemachine"]["Statement"][0]["Condition"]["ArnLike"] == {
        "aws:SourceArn": STATE_MACHINE
    }


# --- every call each role makes on moto, against its deployed policy ----------------------

PIPELINE_BUCKET = "arn:aws:s3:::imgflow-test-images-eb805c6c"
PIPELINE_TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/imgflow-test-index"
PIPELINE_TOPIC = "arn:aws:sns:us-east-1:123456789012:imgflow-test-failures"

# What each role's code (or Step Functions acting for it) calls in a run with failures.
EXPECTED_ACTIONS = {
    "plan": {"s3:GetObject", "s3:PutObject"},
    "download": {
        "s3:GetObject",  # a urls job's batches
        "s3:PutObject",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
    },
    "consolidate": {"s3:GetObject", "s3:PutObject", "s3:ListBucket"},
    "statemachine": {"lambda:InvokeFunction", "s3:GetObject", "s3:PutObject", "sns:Publish"},
}
# One call each role does not need, which its policy must refuse.
NOT_NEEDED = {
    "plan": ("s3:PutObject", f"{PIPELINE_BUCKET}/images/127.0.0.1/a.gif"),
    "download": ("dynamodb:PutItem", PIPELINE_TABLE),
    "consolidate": ("dynamodb:GetItem", PIPELINE_TABLE),
    "statemachine": ("s3:ListBucket", PIPELINE_BUCKET),
    "submit": ("states:StopExecution", EXECUTION.replace("demo-", "imgflow-test-")),
}


def test_every_call_each_role_makes_is_allowed_and_nothing_unused(
    aws: Aws, tmp_path: Path, flags: StaticServer
) -> None:
    with patched(), CallLog().installed() as log:
        deployed = deploy_pipeline(aws, pipeline_config(tmp_path / "deployed"))
        body = reference_body("fail", flags.base_url)
        run_execution(aws, deployed.state_machine_arn, body, "via-body")
        started = start_job(aws, deployed.bucket, deployed.state_machine_arn, body, 2)
        wait_for_execution(aws, started.execution_arn)
        urls = {"urls": [f"{flags.base_url}/ad/ad.gif", {"url": f"{flags.base_url}/zz/zz.gif"}]}
        run_execution(aws, deployed.state_machine_arn, urls, "via-urls")
    calls = log.by_role()
    assert {role: {a for a, _ in pairs} for role, pairs in calls.items()} == EXPECTED_ACTIONS
    resources = {arn for pairs in calls.values() for _, arn in pairs}
    assert "arn:aws:sns:us-east-1:123456789012:imgflow-test-failures" in resources
    assert all(
        arn.startswith((f"{PIPELINE_BUCKET}/", PIPELINE_BUCKET, PIPELINE_TABLE, PIPELINE_TOPIC))
        or arn.startswith("arn:aws:lambda:us-east-1:123456789012:function:imgflow-test-")
        for arn in resources
    ), resources
    client = aws.iam()
    for role in (*EXPECTED_ACTIONS, "submit"):
        document = client.get_role_policy(RoleName=f"imgflow-test-{role}", PolicyName="imgflow")
        policy = document["PolicyDocument"]
        policy = json.loads(policy) if isinstance(policy, str) else policy
        for action, arn in sorted(calls.get(role, set())):
            assert _allowed(policy, action, arn), f"{role} may not {action} {arn}"
        action, arn = NOT_NEEDED[role]
        assert not _allowed(policy, action, arn), f"{role} may {action} {arn}, never needed"
