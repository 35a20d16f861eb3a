"""Every failed execution ends with the SNS notice, wherever it fails (here: the plan)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lambda_invoke import patched
from pipeline_env import Deployed, deploy_pipeline, notices, pipeline_config
from sfn_limits import strict_map
from test_pipeline import run

from imgflow.aws.client import Aws


@pytest.fixture
def pipeline(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    with patched(), strict_map():
        yield deploy_pipeline(aws, pipeline_config(tmp_path / "deployed"))


def test_an_invalid_job_fails_with_a_notice(aws: Aws, pipeline: Deployed) -> None:
    body = {"baseUrl": "https://example.com", "resourcePaths": "not a list"}
    execution = run(aws, pipeline, body, "invalid")
    assert execution["status"] == "FAILED"
    [notice] = notices(aws, pipeline.queue_url)
    assert "invalid" in notice and "resourcePaths" in notice, notice
    assert json.loads(notice)["step"] == "Plan"
