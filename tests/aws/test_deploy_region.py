"""The region: --region, then aws.region, then AWS_REGION, then AWS_DEFAULT_REGION.

boto3 itself reads only AWS_DEFAULT_REGION; the AWS SDKs and CLI v2 read AWS_REGION first,
and imgflow's docs name AWS_REGION, so both are honoured in that order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_env import invoke_cli

REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


@pytest.fixture
def project(tmp_path: Path, moto_mock: None, deployment_name: str) -> Path:
    config = tmp_path / "imgflow.yaml"
    config.write_text(
        f"deployment: {deployment_name}\naws:\n  state_dir: {tmp_path / 'deployed'}\n"
    )
    return config


def planned_region(config: Path, *flags: str) -> str:
    code, stdout, stderr = invoke_cli(
        "deploy", "--dry-run", "--config", str(config), "-o", "json", *flags
    )
    assert code == 0, stderr
    arn = json.loads(stdout)["outputs"]["stateMachineArn"]
    region: str = arn.split(":")[3]
    return region


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({"AWS_REGION": "eu-west-1"}, (), "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, (), "ap-south-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, (), "eu-west-1"),
        (
            {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"},
            ("--region", "us-west-2"),
            "us-west-2",
        ),
    ],
    ids=["AWS_REGION-only", "AWS_DEFAULT_REGION-only", "both", "flag-over-both"],
)
def test_the_region_comes_from_the_flag_then_aws_region_then_the_default(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    flags: tuple[str, ...],
    expected: str,
) -> None:
    for name in REGION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert planned_region(project, *flags) == expected


def test_no_region_anywhere_is_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in REGION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    code, _, stderr = invoke_cli("deploy", "--dry-run", "--config", str(project))
    assert code == 2
    assert stderr.strip().splitlines() == [
        "imgflow: error: aws.region: no AWS region set (use --region, AWS_REGION or config)"
    ]
