"""Deploy waits for Lambda's Pending / InProgress states (botocore's waiters).

The moto double (tests/support/lambda_states.py, on in every moto_mock test) reports a new
function Pending and an updated one InProgress for a few GetFunction polls, and refuses
invocations and updates meanwhile with ResourceConflictException, as AWS does.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING

import botocore.exceptions
import pytest
from support.lambda_states import LambdaStates

from imgflow.aws import deploy as deploy_package
from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeployResult
from imgflow.aws.zips import lambda_zip
from imgflow.config import Config, with_overrides

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

ROLES = ("plan", "download", "consolidate")


@pytest.fixture
def deployed(
    aws: Aws, run_deploy: Callable[..., DeployResult], deploy_cfg: Config
) -> tuple[LambdaClient, str]:
    """A first deploy done: the Lambda client and the deployment's name."""
    run_deploy(deploy_cfg)
    return aws.lambda_(), deploy_cfg.deployment


def test_the_double_refuses_what_lambda_refuses_while_pending(
    deployed: tuple[LambdaClient, str], lambda_states: LambdaStates
) -> None:
    lam, deployment = deployed
    name = f"{deployment}-plan"
    config = lam.get_function_configuration(FunctionName=name)
    lam.create_function(
        FunctionName=f"{name}-2",
        Runtime=config["Runtime"],
        Role=config["Role"],
        Handler=config["Handler"],
        Code={"ZipFile": _zip_bytes()},
    )
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        lam.invoke(FunctionName=f"{name}-2", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "ResourceConflictException"
    assert lam.get_function(FunctionName=f"{name}-2")["Configuration"]["State"] == "Pending"
    lam.get_waiter("function_active_v2").wait(FunctionName=f"{name}-2")
    lam.invoke(FunctionName=f"{name}-2", Payload=b"{}")
    lam.update_function_configuration(FunctionName=f"{name}-2", MemorySize=256)
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceConflictException"):
        lam.update_function_configuration(FunctionName=f"{name}-2", MemorySize=512)
    assert lambda_states.refused == {"Invoke": 1, "UpdateFunctionConfiguration": 1}


def _zip_bytes(extra: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambdas/__init__.py", "")
        archive.writestr("extra.txt", extra)
    return buffer.getvalue()


def test_functions_are_active_and_invocable_when_a_first_deploy_returns(
    deployed: tuple[LambdaClient, str], lambda_states: LambdaStates
) -> None:
    lam, deployment = deployed
    for role in ROLES:
        lam.invoke(FunctionName=f"{deployment}-{role}", Payload=b"{}")
    assert lambda_states.refused == {}
    assert lambda_states.waiter_sleeps >= len(ROLES)  # deploy did wait


def test_an_update_of_code_and_settings_waits_between_and_after(
    aws: Aws,
    lambda_states: LambdaStates,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_deploy(deploy_cfg)
    package = lambda_zip()
    buffer = io.BytesIO(package.data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("imgflow-release.txt", "a new build")
    changed = dataclasses.replace(package, data=buffer.getvalue())
    monkeypatch.setattr(deploy_package, "lambda_zip", lambda *target: changed)
    bigger = with_overrides(deploy_cfg, **{"lambda": {"memory": 2048}})
    result = run_deploy(bigger)
    updated = [s for s in result.plan.steps if s.key == "function:download"]
    assert updated[0].action == "update" and "code" in updated[0].changes
    lam = aws.lambda_()
    for role in ROLES:
        config = lam.get_function_configuration(FunctionName=f"{deploy_cfg.deployment}-{role}")
        assert config["LastUpdateStatus"] == "Successful"
        assert config["CodeSha256"] == changed.code_sha256
    assert lambda_states.refused == {}
