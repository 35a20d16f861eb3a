"""The zip is built for the configured Lambda runtime and architecture, and the definition
uses the account's partition (moto runs any zip, so these are checked on what deploy made).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeployResult
from imgflow.aws.zips import lambda_zip
from imgflow.config import Config
from imgflow.errors import DeployError
from infra.statemachine import definition


def test_arm64_gives_an_arm64_function_with_aarch64_wheels(
    aws: Aws, make_cfg: Callable[..., Config], run_deploy: Callable[..., DeployResult]
) -> None:
    cfg = make_cfg(**{"lambda": {"architecture": "arm64"}})
    run_deploy(cfg)
    name = f"{cfg.deployment}-download"
    config = aws.lambda_().get_function_configuration(FunctionName=name)
    assert config["Architectures"] == ["arm64"]
    package = lambda_zip("python3.12", "arm64")
    assert config["CodeSha256"] == package.code_sha256
    names = zipfile.ZipFile(io.BytesIO(package.data)).namelist()
    compiled = [n for n in names if n.endswith(".so")]
    assert compiled and all("aarch64" in n for n in compiled), compiled[:3]


def test_a_runtime_without_wheels_is_refused_in_one_line(
    make_cfg: Callable[..., Config],
    run_deploy: Callable[..., DeployResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGFLOW_WHEEL_CACHE", str(tmp_path / "wheels"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no registry here: the wheels cannot be had
    cfg = make_cfg(**{"lambda": {"runtime": "python3.13"}})
    with pytest.raises(DeployError) as caught:
        run_deploy(cfg)
    assert "cp313" in str(caught.value) and "\n" not in str(caught.value)


def test_the_definition_uses_the_account_partition() -> None:
    arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:f-{}"
    built: Any = definition(
        plan_arn=arn.format("plan"),
        download_arn=arn.format("download"),
        consolidate_arn=arn.format("consolidate"),
        topic_arn="arn:aws-cn:sns:cn-north-1:123456789012:t",
        bucket="b",
        max_batches=2,
    )
    text = json.dumps(built)
    assert '"arn:aws:' not in text
    assert '"arn:aws-cn:states:::lambda:invoke"' in text


def test_the_wheel_cache_variable_is_not_called_ignored() -> None:
    from imgflow.config import unknown_env

    assert unknown_env({"IMGFLOW_WHEEL_CACHE": "/tmp/wheels"}) == []
