"""IAM policies: least privilege, checked with moto's policy evaluator."""

from __future__ import annotations

import json

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from infra import iam
from infra.names import Names

NAMES = Names("demo", "123456789012", "us-east-1")
PREFIX = "images/"


class Arns:
    """The ARNs of a deployment in account 123456789012, us-east-1, written out by hand (not
    from infra.names, the code under test) as AWS documents them."""

    def __init__(self, deployment: str) -> None:
        where = "us-east-1:123456789012"
        self.bucket = f"arn:aws:s3:::{deployment}-images-eb805c6c"
        self.table = f"arn:aws:dynamodb:{where}:table/{deployment}-index"
        self.topic = f"arn:aws:sns:{where}:{deployment}-failures"
        self.state_machine = f"arn:aws:states:{where}:stateMachine:{deployment}-pipeline"
        self.execution = f"arn:aws:states:{where}:execution:{deployment}-pipeline:run-1"
        self._where = where
        self._deployment = deployment

    def function(self, role: str) -> str:
        return f"arn:aws:lambda:{self._where}:function:{self._deployment}-{role}"

    def log_group(self, role: str) -> str:
        return f"arn:aws:logs:{self._where}:log-group:/aws/lambda/{self._deployment}-{role}"


DEMO = Arns("demo")
OTHER = Arns("other")


def test_the_policies_name_the_deployments_resources() -> None:
    assert (NAMES.bucket_arn, NAMES.table_arn, NAMES.topic_arn) == (
        DEMO.bucket,
        DEMO.table,
        DEMO.topic,
    )
    assert NAMES.state_machine_arn == DEMO.state_machine
    assert NAMES.executions_arn.replace("*", "run-1") == DEMO.execution
    for role in ("plan", "download", "consolidate"):
        assert NAMES.function_arn(role) == DEMO.function(role)
        assert NAMES.log_group_arn(role) == DEMO.log_group(role)


def _allowed(policy: iam.Policy, action: str, resource: str) -> bool:
    evaluator = IAMPolicy(json.dumps(policy))
    return evaluator.is_action_permitted(action, resource) == PermissionResult.PERMITTED


def _all_policies() -> dict[str, iam.Policy]:
    return {purpose: policy for purpose, (_, policy) in iam.role_policies(NAMES, PREFIX).items()}


@pytest.mark.parametrize("purpose", ["plan", "download", "consolidate", "statemachine", "api"])
def test_no_wildcard_resource_outside_logs(purpose: str) -> None:
    for statement in _all_policies()[purpose]["Statement"]:
        assert "*" not in statement["Action"] and not any(
            a.endswith(":*") for a in statement["Action"]
        )
        for resource in statement["Resource"]:
            assert resource != "*"
            head = resource.split("*", 1)[0]
            assert "demo" in head, f"{purpose}: {resource} is not scoped to the deployment"
            if "*" in resource and not resource.startswith("arn:aws:logs:"):
                assert resource.endswith(("/*", ":*", f"/{PREFIX}*")), resource


def test_download_role_writes_its_bucket_and_table_only() -> None:
    policy = iam.download_policy(NAMES, PREFIX)
    assert _allowed(policy, "s3:PutObject", f"{DEMO.bucket}/images/example.com/a.jpg")
    assert _allowed(policy, "s3:PutObject", f"{DEMO.bucket}/jobs/run-1/results/0.json")
    assert not _allowed(policy, "s3:PutObject", f"{OTHER.bucket}/images/a.jpg")
    assert not _allowed(policy, "s3:PutObject", f"{DEMO.bucket}/elsewhere/a.jpg")
    assert not _allowed(policy, "s3:DeleteObject", f"{DEMO.bucket}/images/a.jpg")
    assert _allowed(policy, "dynamodb:BatchWriteItem", DEMO.table)
    assert not _allowed(policy, "dynamodb:BatchWriteItem", OTHER.table)
    assert not _allowed(policy, "dynamodb:DeleteTable", DEMO.table)
    assert not _allowed(policy, "sns:Publish", DEMO.topic)


def test_api_role_starts_its_state_machine_only() -> None:
    policy = iam.api_policy(NAMES)
    assert _allowed(policy, "states:StartExecution", DEMO.state_machine)
    assert not _allowed(policy, "states:StartExecution", OTHER.state_machine)
    assert not _allowed(policy, "states:StopExecution", DEMO.state_machine)


def test_state_machine_role_invokes_its_functions_and_map_runs() -> None:
    policy = iam.state_machine_policy(NAMES)
    for role in ("plan", "download", "consolidate"):
        assert _allowed(policy, "lambda:InvokeFunction", DEMO.function(role))
        assert _allowed(policy, "lambda:InvokeFunction", DEMO.function(role) + ":$LATEST")
        assert not _allowed(policy, "lambda:InvokeFunction", OTHER.function(role))
    assert _allowed(policy, "sns:Publish", DEMO.topic)
    assert not _allowed(policy, "sns:Publish", OTHER.topic)
    assert _allowed(policy, "s3:GetObject", f"{DEMO.bucket}/jobs/run-1/manifest.json")
    assert not _allowed(policy, "s3:GetObject", f"{DEMO.bucket}/images/a.jpg")
    assert _allowed(policy, "states:StartExecution", DEMO.state_machine)
    assert _allowed(policy, "states:DescribeExecution", DEMO.execution)
    assert not _allowed(policy, "states:StartExecution", OTHER.state_machine)


def test_plan_and_consolidate_roles_stay_under_jobs() -> None:
    for policy in (iam.plan_policy(NAMES), iam.consolidate_policy(NAMES)):
        assert _allowed(policy, "s3:PutObject", f"{DEMO.bucket}/jobs/run-1/batches.json")
        assert not _allowed(policy, "s3:PutObject", f"{DEMO.bucket}/images/a.jpg")
        assert not _allowed(policy, "s3:PutObject", f"{OTHER.bucket}/jobs/x")
    consolidate = iam.consolidate_policy(NAMES)
    listing = consolidate["Statement"][1]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["jobs/*"]}}


@pytest.mark.parametrize("role", ["plan", "download", "consolidate"])
def test_function_roles_write_only_their_own_log_group(role: str) -> None:
    policy = _all_policies()[role]
    logs = [s for s in policy["Statement"] if any(a.startswith("logs:") for a in s["Action"])]
    assert logs == [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{DEMO.log_group(role)}:*"],
        }
    ]
    own = f"{DEMO.log_group(role)}:log-stream:2024/01/01/[$LATEST]abc"
    assert _allowed(policy, "logs:CreateLogStream", own)
    assert _allowed(policy, "logs:PutLogEvents", own)
    for other in (
        *(DEMO.log_group(r) for r in ("plan", "download", "consolidate") if r != role),
        OTHER.log_group(role),
        f"{DEMO.log_group(role)}-x",  # a group whose name merely starts like ours
    ):
        assert not _allowed(policy, "logs:PutLogEvents", f"{other}:log-stream:s")
    # deploy creates, tags, retains and deletes the group; the function only writes to it
    for action in ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy"):
        assert not _allowed(policy, action, f"{DEMO.log_group(role)}:*")


def test_trust_policies_name_the_right_service() -> None:
    services = {p: s for p, (s, _) in iam.role_policies(NAMES, PREFIX).items()}
    assert services == {
        "plan": "lambda.amazonaws.com",
        "download": "lambda.amazonaws.com",
        "consolidate": "lambda.amazonaws.com",
        "statemachine": "states.amazonaws.com",
        "api": "apigateway.amazonaws.com",
    }
