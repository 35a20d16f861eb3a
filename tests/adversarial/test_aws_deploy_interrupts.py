"""A first deploy interrupted at each of its mutating calls in turn, two ways:

- ``refused``: the call fails before it reaches AWS (an ``aws.on_call`` hook raises AWS's
  InternalFailure), so deploy stops with its one-line DeployError;
- ``killed``: the call is made and AWS applies it, then the process dies before it hears
  the answer (a BaseException from botocore's after-call event): nothing after the call
  runs, the state file included.

After each: a teardown leaves nothing of the deployment (by tag, through the resource
groups tagging API plus IAM and API Gateway, which moto's tagging API does not cover, and by
name); and, for a second deployment interrupted the same way, the next deploy converges, a
third makes no mutating call, and teardown leaves nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support.aws_moto import moto_session

from imgflow.aws.client import connect
from imgflow.aws.deploy import deploy
from imgflow.aws.deploy.state import load_outputs, state_path
from imgflow.aws.teardown import teardown
from imgflow.config import Config, from_mapping
from imgflow.errors import DeployError
from infra.names import TAG_KEY

READ_PREFIXES = ("Get", "List", "Describe", "Head")
SERVICES = ("s3", "dynamodb", "sns", "iam", "logs", "lambda_", "stepfunctions", "apigatewayv2")
# The mutating calls of a first deploy, in order (test_the_first_deploy_makes_these_calls).
FIRST_DEPLOY = (
    ["CreateBucket", "PutBucketTagging", "PutPublicAccessBlock", "PutBucketEncryption"]
    + ["PutBucketPolicy", "PutBucketLifecycleConfiguration", "CreateTable", "CreateTopic"]
    + ["Subscribe"]
    + ["CreateRole", "PutRolePolicy"] * 5  # the four functions' and the state machine's
    + ["CreateLogGroup", "PutRetentionPolicy"] * 4  # plan, download, consolidate, submit
    + ["CreateFunction"] * 4
    + ["CreateLogGroup", "PutRetentionPolicy"]  # the state machine's log group
    + ["CreateStateMachine", "CreateApi", "AddPermission"]  # API Gateway may invoke submit
    + ["CreateIntegration", "CreateRoute", "CreateStage"]
)
STEPS = [f"{n:02d}-{name}" for n, name in enumerate(FIRST_DEPLOY)]


class Killed(BaseException):
    """The process died (nothing catches this)."""


class Interrupter:
    """One connection for the whole module whose hooks interrupt when armed.

    Armed with (at, how), the `at`-th mutating call (from 0) is refused or kills the process.
    """

    def __init__(self) -> None:
        self.aws = connect(region="us-east-1")
        self.tagging = self.aws._session.client("resourcegroupstaggingapi")  # test-only look
        self.at: int | None = None
        self.how = ""
        self.seen = 0
        self.armed: list[str] = []
        self.calls: list[str] = []
        self.aws.on_call(self.before)
        for service in SERVICES:
            getattr(self.aws, service)().meta.events.register("after-call.*.*", self.after)

    def arm(self, at: int | None, how: str = "") -> None:
        self.at, self.how, self.seen, self.armed = at, how, 0, []

    def before(self, operation: str, params: dict[str, Any]) -> None:
        if operation.startswith(READ_PREFIXES):
            return
        self.calls.append(operation)
        n, self.seen = self.seen, self.seen + 1
        if n != self.at:
            return
        if self.how == "refused":
            error = {"Error": {"Code": "InternalFailure", "Message": "injected"}}
            raise ClientError(error, operation)  # type: ignore[arg-type]
        self.armed.append(operation)

    def after(self, event_name: str, **kwargs: Any) -> None:
        if self.armed and event_name.endswith(f".{self.armed[0]}"):
            self.armed.clear()
            raise Killed(event_name)


@pytest.fixture(scope="module")
def rig() -> Iterator[Interrupter]:
    with moto_session():
        yield Interrupter()


def config(tmp_path: Path) -> Config:
    return from_mapping(
        {
            "deployment": f"int{uuid.uuid4().hex[:8]}",
            "aws": {"region": "us-east-1", "state_dir": str(tmp_path / "deployed")},
            "notify": {"emails": ["ops@example.com"]},
        },
        env={},
    )


def run_interrupted(rig: Interrupter, cfg: Config, at: int, how: str) -> None:
    expected: type[BaseException] = DeployError if how == "refused" else Killed
    rig.arm(at, how)
    try:
        with pytest.raises(expected) as caught:
            deploy(cfg, rig.aws, sleep=lambda s: None)
    finally:
        rig.arm(None)
    if how == "refused":
        message = str(caught.value)
        assert FIRST_DEPLOY[at] in message and "InternalFailure" in message, message
        assert "\n" not in message
    assert load_outputs(cfg) is None  # the deploy did not complete


def leftovers(rig: Interrupter, deployment: str) -> list[str]:
    """Everything still tagged imgflow:deployment=<deployment> or named after it."""
    found: set[str] = set()
    aws = rig.aws
    for page in rig.tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": TAG_KEY, "Values": [deployment]}]
    ):
        found.update(r["ResourceARN"] for r in page["ResourceTagMappingList"])
    for bucket in aws.s3().list_buckets()["Buckets"]:
        if bucket["Name"].startswith(deployment):
            found.add(f"bucket {bucket['Name']}")
    found.update(t for t in aws.dynamodb().list_tables()["TableNames"] if deployment in t)
    found.update(
        t["TopicArn"] for t in aws.sns().list_topics()["Topics"] if deployment in t["TopicArn"]
    )
    found.update(
        s["SubscriptionArn"]
        for s in aws.sns().list_subscriptions()["Subscriptions"]
        if deployment in s["TopicArn"]
    )
    iam = aws.iam()
    for role in iam.list_roles()["Roles"]:
        tags = iam.list_role_tags(RoleName=role["RoleName"])["Tags"]
        if deployment in role["RoleName"] or {"Key": TAG_KEY, "Value": deployment} in tags:
            found.add(role["Arn"])
    found.update(
        f["FunctionArn"]
        for f in aws.lambda_().list_functions()["Functions"]
        if deployment in f["FunctionName"]
    )
    found.update(
        g["logGroupName"]
        for g in aws.logs().describe_log_groups()["logGroups"]
        if deployment in g["logGroupName"]
    )
    found.update(
        m["stateMachineArn"]
        for m in aws.stepfunctions().list_state_machines()["stateMachines"]
        if deployment in m["name"]
    )
    for api in aws.apigatewayv2().get_apis()["Items"]:
        if deployment in api["Name"] or api.get("Tags", {}).get(TAG_KEY) == deployment:
            found.add(f"api {api['ApiId']}")
    return sorted(found)


def test_the_first_deploy_makes_these_calls(rig: Interrupter, tmp_path: Path) -> None:
    """The parametrization below covers every mutating call of a first deploy."""
    cfg = config(tmp_path)
    rig.calls.clear()
    deploy(cfg, rig.aws, sleep=lambda s: None)
    assert rig.calls == FIRST_DEPLOY, " ".join(rig.calls)
    assert len(leftovers(rig, cfg.deployment)) > 16  # the check sees a whole deployment
    teardown(cfg, rig.aws)
    assert leftovers(rig, cfg.deployment) == []


@pytest.mark.parametrize("how", ["refused", "killed"])
@pytest.mark.parametrize("at", range(len(FIRST_DEPLOY)), ids=STEPS)
def test_an_interrupted_first_deploy_converges_and_tears_down(
    rig: Interrupter, tmp_path: Path, at: int, how: str
) -> None:
    aws = rig.aws

    # Teardown straight after the interruption leaves nothing.
    cfg = config(tmp_path / "a")
    run_interrupted(rig, cfg, at, how)
    result = teardown(cfg, aws)
    assert result.kept == []
    assert leftovers(rig, cfg.deployment) == []
    assert not state_path(cfg).exists()

    # The next deploy converges; a third changes nothing; teardown leaves nothing.
    cfg = config(tmp_path / "b")
    run_interrupted(rig, cfg, at, how)
    deploy(cfg, aws, sleep=lambda s: None)
    outputs = load_outputs(cfg)
    assert outputs is not None and outputs.api_url
    rig.calls.clear()
    third = deploy(cfg, aws, sleep=lambda s: None)
    assert rig.calls == [], rig.calls
    assert {s.action for s in third.plan.steps} == {"no change"}
    apis = [a for a in aws.apigatewayv2().get_apis()["Items"] if cfg.deployment in a["Name"]]
    assert [a["ApiId"] for a in apis] == [outputs.api_id]
    integrations = aws.apigatewayv2().get_integrations(ApiId=apis[0]["ApiId"])["Items"]
    assert len(integrations) == 1, integrations
    teardown(cfg, aws)
    assert leftovers(rig, cfg.deployment) == []
