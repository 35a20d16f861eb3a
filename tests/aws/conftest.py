"""Shared moto fixtures for the aws tests (nothing here talks to real AWS).

moto applies a bucket policy's conditional Deny unconditionally (it evaluates only StringEquals
conditions), so the deployed TLS-only policy would refuse every test request. ``moto_mock``
and ``moto_server`` therefore treat test requests as TLS: see ``requests_use_tls``.

- ``aws_env``: fake credentials; no region, profile or endpoint from the host (tests name
  their region, so a region read from the environment is never masked by the fixture).
- ``lambda_states``: Lambda's Pending / InProgress states and their ResourceConflictException
  (tests/support/lambda_states.py), on in every ``moto_mock`` test.
- ``moto_mock``: moto in process, Step Functions executing definitions, Lambda without Docker.
  Its IAM refuses DeleteRole (DeleteConflict) while the role still has inline or attached
  policies or an instance profile, as IAM does (docs/aws.md, "What AWS enforces";
  tests/aws/test_former_api_role.py checks that it still does).
- ``moto_server``: a ThreadedMotoServer on 127.0.0.1 (free port); yields its URL.
- ``aws``: an ``imgflow.aws.client.Aws`` on the in-process mock.
- ``deployment_name``: a deployment name no other test uses.
- ``deploy_cfg``: a Config with a unique deployment name and state dir in tmp_path.
- ``make_cfg(**sections)``: more such Configs (sections override the defaults).
- ``run_deploy(cfg, **kwargs)``: deploy into the mock with a stand-in state machine
  definition and a sleep that returns at once.
- ``deployed``: a full deploy of ``deploy_cfg`` into the mock; yields DeploymentOutputs.
- ``config_file``: the real pipeline (definition and handlers, tests/aws/pipeline_env.py)
  deployed into the mock with its handlers patched in; yields the path of an imgflow.yaml
  naming it (backend aws) and the Deployed.
- ``mutations``: a list that collects every mutating API call made through ``aws``.
- ``flags``: the bundled flag set over HTTP, one server per test module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto import mock_aws
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket
from moto.server import ThreadedMotoServer
from support.lambda_states import LambdaStates

from imgflow.aws.client import Aws, connect
from imgflow.aws.deploy import DeploymentOutputs, DeployResult, deploy
from imgflow.config import Config, from_mapping
from imgflow.demo import FLAGS_DIR
from imgflow.demo.server import StaticServer, serve_directory

MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
READ_PREFIXES = ("Get", "List", "Describe", "Head")
# Variables of the host that would choose a region, profile or endpoint for a test.
HOST_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def _insecure_transport_only(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    return condition == {"Bool": {"aws:SecureTransport": "false"}}


def _permission_over_tls(bucket: FakeBucket, action: str, resource: str) -> Any:
    """moto's bucket policy check, for a request made over TLS."""
    if bucket.policy is None:
        return PermissionResult.NEUTRAL
    policy = json.loads(bucket.policy.decode())
    statements = policy.get("Statement", [])
    if isinstance(statements, list):
        policy["Statement"] = [s for s in statements if not _insecure_transport_only(s)]
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)


@contextmanager
def requests_use_tls() -> Iterator[None]:
    """Make moto evaluate `aws:SecureTransport` as AWS would for HTTPS requests."""
    original = FakeBucket.get_permission
    FakeBucket.get_permission = _permission_over_tls  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        FakeBucket.get_permission = original  # type: ignore[method-assign]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HOST_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")


@pytest.fixture
def lambda_states() -> Iterator[LambdaStates]:
    """Lambda's Pending / InProgress states on every client made in the test."""
    with LambdaStates().installed() as states:
        yield states


@pytest.fixture
def moto_mock(aws_env: None, lambda_states: LambdaStates) -> Iterator[None]:
    with mock_aws(config=MOTO_CONFIG), requests_use_tls():
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # No MOTO_PORT in this process: it would send every later in-process handler (moto_mock
    # tests) to this server instead of their own mock. Callers pass the URL explicitly.
    httpx.post(f"{url}/moto-api/config", json=MOTO_CONFIG).raise_for_status()
    try:
        with requests_use_tls():
            yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def flags() -> Iterator[StaticServer]:
    with serve_directory(FLAGS_DIR) as server:
        yield server


@pytest.fixture
def aws(moto_mock: None) -> Aws:
    return connect(region="us-east-1")


def unique_deployment() -> str:
    """A deployment name no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


def make_config(tmp_path: Path, **sections: Any) -> Config:
    """A Config for tests: unique deployment, state in tmp_path, us-east-1."""
    data: dict[str, Any] = {
        "deployment": unique_deployment(),
        "aws": {"region": "us-east-1", "state_dir": str(tmp_path / "deployed")},
        "notify": {"emails": ["ops@example.com"]},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return from_mapping(data, env={})


def tiny_definition(
    *,
    plan_arn: str,
    download_arn: str,
    consolidate_arn: str,
    topic_arn: str,
    bucket: str,
    max_batches: int,
) -> dict[str, Any]:
    """A small stand-in for infra.statemachine.definition."""
    return {
        "Comment": f"test pipeline for {bucket} ({max_batches} batches)",
        "StartAt": "Plan",
        "States": {
            "Plan": {"Type": "Task", "Resource": plan_arn, "Next": "Download"},
            "Download": {"Type": "Task", "Resource": download_arn, "Next": "Consolidate"},
            "Consolidate": {"Type": "Task", "Resource": consolidate_arn, "Next": "Notify"},
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic_arn, "Message": "done"},
                "End": True,
            },
        },
    }


def no_sleep(seconds: float) -> None:
    """An injected sleep that returns at once."""


def mutating_calls(aws: Aws) -> list[str]:
    """A list that fills with the name of every mutating call made through `aws`."""
    calls: list[str] = []

    def record(operation: str, params: dict[str, Any]) -> None:
        if not operation.startswith(READ_PREFIXES):
            calls.append(operation)

    aws.on_call(record)
    return calls


@pytest.fixture
def deployment_name() -> str:
    return unique_deployment()


@pytest.fixture
def mutations(aws: Aws) -> list[str]:
    return mutating_calls(aws)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., Config]:
    def make(**sections: Any) -> Config:
        return make_config(tmp_path, **sections)

    return make


@pytest.fixture
def deploy_cfg(make_cfg: Callable[..., Config]) -> Config:
    return make_cfg()


@pytest.fixture
def run_deploy(aws: Aws) -> Callable[..., DeployResult]:
    def run(cfg: Config, **kwargs: Any) -> DeployResult:
        kwargs.setdefault("definition", tiny_definition)
        kwargs.setdefault("sleep", no_sleep)
        return deploy(cfg, aws, **kwargs)

    return run


@pytest.fixture
def deployed(run_deploy: Callable[..., DeployResult], deploy_cfg: Config) -> DeploymentOutputs:
    return run_deploy(deploy_cfg).outputs


@pytest.fixture
def config_file(aws: Aws, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    from lambda_invoke import patched
    from pipeline_env import deploy_pipeline, pipeline_config

    state_dir = tmp_path / "deployed"
    with patched():
        pipeline = deploy_pipeline(aws, pipeline_config(state_dir))
        config = tmp_path / "imgflow.yaml"
        settings = {
            "backend": "aws",
            "deployment": pipeline.cfg.deployment,
            "aws": {"region": "us-east-1", "state_dir": str(state_dir)},
        }
        config.write_text(json.dumps(settings))
        yield config, pipeline
