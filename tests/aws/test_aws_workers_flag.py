"""`run --workers` with the aws backend: refused in one line, exit 2, before any AWS call.

On aws the work in flight is the deployed Map's concurrency (job.max_batches at deploy), so
a number of local worker processes means nothing there; it was once silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_env import invoke_cli


def _config(tmp_path: Path) -> str:
    path = tmp_path / "imgflow.yaml"
    settings = {
        "backend": "aws",
        "deployment": "never-deployed",
        "aws": {"region": "us-east-1", "state_dir": str(tmp_path / "deployed")},
    }
    path.write_text(json.dumps(settings))
    paths = tmp_path / "paths.txt"
    paths.write_text("a.jpg\n")
    return str(path)


@pytest.mark.parametrize("workers", ["2", "auto"])
def test_workers_is_refused_on_aws_in_one_line(tmp_path: Path, workers: str) -> None:
    config = _config(tmp_path)
    paths = str(tmp_path / "paths.txt")
    args = ("run", "--paths-file", paths, "--base-url", "http://127.0.0.1:9/")
    code, _, stderr = invoke_cli(*args, "--config", config, "--workers", workers)
    assert code == 2 and "--workers" in stderr and "local" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr
    assert not (tmp_path / "deployed").exists()


def test_one_worker_is_what_aws_does_anyway(tmp_path: Path) -> None:
    # --workers 1 asks for nothing aws does not do: the run goes on (here to the missing
    # deployment, the next thing it checks).
    config = _config(tmp_path)
    paths = str(tmp_path / "paths.txt")
    args = ("run", "--paths-file", paths, "--base-url", "http://127.0.0.1:9/")
    code, _, stderr = invoke_cli(*args, "--config", config, "--workers", "1")
    assert code == 2 and "--workers" not in stderr and "not found" in stderr, stderr
