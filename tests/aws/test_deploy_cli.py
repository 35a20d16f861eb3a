"""`imgflow deploy` and `imgflow teardown` as real processes against a moto server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaBackend
from support.cli_run import run_cli
from support.json_schemas import validate


def imgflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return run_cli(*args, cwd=cwd, env=keys, drop=("AWS_", "MOTO_PORT"))


@pytest.fixture
def project(tmp_path: Path, moto_server: str, deployment_name: str) -> Path:
    (tmp_path / "imgflow.yaml").write_text(
        f"deployment: {deployment_name}\n"
        f"aws:\n  region: us-east-1\n  endpoint_url: {moto_server}\n"
        "notify:\n  emails: [ops@example.com]\n"
    )
    return tmp_path


def test_deploy_twice_then_teardown(project: Path) -> None:
    first = imgflow(project, "deploy")
    assert first.returncode == 0, first.stderr
    assert "19 to create, 0 to update, 0 unchanged" in first.stdout
    assert "created http api" in first.stderr
    assert "/jobs" in first.stdout

    second = imgflow(project, "deploy", "--output", "json")
    assert second.returncode == 0, second.stderr
    report = validate(json.loads(second.stdout), "deploy")
    assert report["summary"] == {"create": 0, "update": 0, "unchanged": 19}
    assert {s["action"] for s in report["steps"]} == {"no change"}
    assert report["outputs"]["apiUrl"].endswith("/jobs")
    assert second.stderr == ""

    dry = imgflow(project, "deploy", "--dry-run", "--region", "us-east-1")
    assert dry.returncode == 0 and "19 unchanged" in dry.stdout

    down = imgflow(project, "teardown", "--output", "json")
    assert down.returncode == 0, down.stderr
    assert len(validate(json.loads(down.stdout), "teardown")["deleted"]) == 19
    again = imgflow(project, "teardown")
    assert again.returncode == 0 and "nothing to delete" in again.stdout
    nothing = imgflow(project, "teardown", "-o", "json")
    assert nothing.returncode == 0, nothing.stderr
    assert validate(json.loads(nothing.stdout), "teardown") == {"deleted": [], "kept": []}


def test_user_errors_are_one_line(project: Path) -> None:
    refused = imgflow(project, "teardown", "--delete-data")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "--yes" in refused.stderr
    (project / "imgflow.yaml").write_text("deployment: X_bad\n")
    bad = imgflow(project, "deploy", "--dry-run")
    assert bad.returncode == 2
    assert bad.stderr.startswith("imgflow: error: deployment:")
    assert "Traceback" not in bad.stderr


def test_aws_error_is_one_line_naming_the_resource(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: LambdaBackend, spec: dict[str, Any]) -> None:
        raise InvalidParameterValueException("Unsupported runtime (injected)")

    monkeypatch.setattr(LambdaBackend, "create_function", refuse)
    failed = imgflow(project, "deploy")
    assert failed.returncode == 1
    line = failed.stderr.strip().splitlines()[-1]
    assert line.startswith("imgflow: error: lambda function ")
    assert "CreateFunction failed with InvalidParameterValueException" in line
    assert "imgflow deploy" in line
    assert "Traceback" not in failed.stderr
    monkeypatch.undo()
    resumed = imgflow(project, "deploy")
    assert resumed.returncode == 0, resumed.stderr
    assert "7 to create, 0 to update, 12 unchanged" in resumed.stdout
    assert imgflow(project, "teardown").returncode == 0
