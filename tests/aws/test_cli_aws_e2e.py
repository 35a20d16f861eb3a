"""deploy -> run -> status -> teardown, the CLI as real processes against a moto server.

The pipeline runs twice: with handlers in the moto server's process, and with each handler
in a subprocess under Lambda's conditions (python3.12, the unzipped zip plus boto3 only,
read-only code; see lambda_invoke's isolated mode), so a module missing from the zip fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lambda_invoke import ISOLATED_PYTHON
from pipeline_env import FLAGS_DIR, reference_body
from runtime_python import isolation_missing, runtime_python
from support.cli_run import run_cli
from support.processes import ServerProcess, port_written

from imgflow.demo.server import StaticServer, serve_directory
from infra.statemachine import FAIL_CAUSE

HERE = Path(__file__).resolve().parent


ISOLATED = pytest.param(
    "isolated",
    marks=pytest.mark.skipif(isolation_missing() is not None, reason=str(isolation_missing())),
)


@pytest.fixture(params=["in-process", ISOLATED])
def moto_endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    port_file = tmp_path / "port"
    env = dict(os.environ)
    if request.param == "isolated":
        env[ISOLATED_PYTHON] = str(runtime_python())
    argv = [sys.executable, str(HERE / "moto_server.py"), str(port_file)]
    with ServerProcess(argv, port_written(port_file), timeout=30, env=env):
        yield f"http://127.0.0.1:{port_file.read_text()}"


def imgflow(args: list[str], cwd: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    return run_cli(*args, cwd=cwd, env=env, drop=("AWS_PROFILE",), timeout=300)


@pytest.mark.slow
def test_deploy_run_status_teardown(moto_endpoint: str, tmp_path: Path) -> None:
    settings = {
        "backend": "aws",
        "deployment": "imgflow-e2e",
        "aws": {"region": "us-east-1", "allow_private_targets": True},
        "api": {"auth": "iam"},
    }
    (tmp_path / "imgflow.yaml").write_text(json.dumps(settings))
    flags: StaticServer
    with serve_directory(FLAGS_DIR) as flags:
        (tmp_path / "fail.json").write_text(json.dumps(reference_body("fail", flags.base_url)))
        deployed = imgflow(["deploy"], tmp_path, moto_endpoint)
        assert deployed.returncode == 0, deployed.stderr
        ran = imgflow(["run", "--job", "fail.json", "-o", "json"], tmp_path, moto_endpoint)
        assert ran.returncode == 1, ran.stderr
        doc = json.loads(ran.stdout)
        assert doc["cause"] == FAIL_CAUSE
        assert doc["summary"] == {"total": 5, "stored": 4, "skipped": 0, "failed": 1}
        shown = imgflow(["status", doc["executionArn"]], tmp_path, moto_endpoint)
        assert shown.returncode == 1 and "Could not find" in shown.stdout
    gone = imgflow(["teardown", "--yes", "--delete-data"], tmp_path, moto_endpoint)
    assert gone.returncode == 0, gone.stderr
