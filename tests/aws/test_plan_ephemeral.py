"""The plan function's /tmp (lambda.plan_ephemeral_mb): set at deploy, updated on redeploy.

A job of 10,000,000 paths spills about 2 GB of partitions to the plan step's /tmp, four
times Lambda's default 512 MB; the other functions keep the default. moto's
UpdateFunctionConfiguration ignores EphemeralStorage (AWS applies it), so the test applies
it the way AWS does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.awslambda.models import LambdaFunction
from pipeline_env import invoke_cli

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeployResult, context
from imgflow.aws.deploy.functions import desired_settings
from imgflow.config import Config, from_mapping
from imgflow.errors import ConfigError

_MOTO_UPDATE = LambdaFunction.update_configuration


@pytest.fixture(autouse=True)
def updates_ephemeral_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def update(self: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
        if "EphemeralStorage" in config_updates:
            self.ephemeral_storage = config_updates["EphemeralStorage"]["Size"]
        return _MOTO_UPDATE(self, config_updates)

    monkeypatch.setattr(LambdaFunction, "update_configuration", update)
    yield


def test_only_the_plan_function_asks_for_more_tmp(
    aws: Aws, make_cfg: Callable[..., Config]
) -> None:
    ctx = context(make_cfg(**{"lambda": {"plan_ephemeral_mb": 2048}}), aws)
    assert desired_settings(ctx, "plan")["EphemeralStorage"] == {"Size": 2048}
    for role in ("download", "consolidate"):
        assert "EphemeralStorage" not in desired_settings(ctx, role)


def _storage(aws: Aws, result: DeployResult) -> dict[str, int]:
    lam = aws.lambda_()
    return {
        role: lam.get_function(FunctionName=arn)["Configuration"]["EphemeralStorage"]["Size"]
        for role, arn in result.outputs.functions.items()
    }


def test_plan_tmp_is_set_at_deploy_and_updated_on_redeploy(
    aws: Aws, make_cfg: Callable[..., Config], run_deploy: Callable[..., DeployResult]
) -> None:
    cfg = make_cfg()
    first = run_deploy(cfg)
    assert _storage(aws, first) == {
        "plan": 3072,
        "download": 512,
        "consolidate": 512,
        "submit": 512,
    }
    bigger = from_mapping(
        {
            "deployment": cfg.deployment,
            "aws": {"region": "us-east-1", "state_dir": cfg.aws.state_dir},
            "notify": {"emails": ["ops@example.com"]},
            "lambda": {"plan_ephemeral_mb": 4096},
        },
        env={},
    )
    second = run_deploy(bigger)
    changed = {s.key: s.changes for s in second.plan.steps if s.mutates}
    assert changed == {"function:plan": ("ephemeralstorage",)}
    assert _storage(aws, second) == {
        "plan": 4096,
        "download": 512,
        "consolidate": 512,
        "submit": 512,
    }
    # What Lambda now reports is what deploy wants: the next deploy changes nothing.
    plan_fn = aws.lambda_().get_function(FunctionName=second.outputs.functions["plan"])
    wanted = desired_settings(context(bigger, aws), "plan")["EphemeralStorage"]
    assert plan_fn["Configuration"]["EphemeralStorage"] == wanted


@pytest.mark.parametrize("size", [511, 10241])
def test_plan_tmp_outside_lambdas_range_is_refused_in_one_line(size: int) -> None:
    with pytest.raises(ConfigError) as refused:
        from_mapping({"lambda": {"plan_ephemeral_mb": size}}, env={})
    message = str(refused.value)
    assert "lambda.plan_ephemeral_mb" in message and "512 to 10240" in message
    assert len(message.splitlines()) == 1


def test_deploy_refuses_a_plan_tmp_outside_the_range_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "imgflow.yaml"
    state_dir = tmp_path / "deployed"
    settings = {"aws": {"region": "us-east-1", "state_dir": str(state_dir)}}
    config.write_text(json.dumps({**settings, "lambda": {"plan_ephemeral_mb": 20000}}))
    code, _, stderr = invoke_cli("deploy", "--config", str(config))
    assert code == 2 and "lambda.plan_ephemeral_mb" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not state_dir.exists()
