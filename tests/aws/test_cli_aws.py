"""`imgflow run --backend aws` and `imgflow status <execution-arn>` on moto, in process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_env import (
    Deployed,
    invoke_cli,
    reference_body,
)
from support.flag_site import flag_site, publish
from support.json_schemas import validate

from imgflow.demo.server import StaticServer
from infra.statemachine import FAIL_CAUSE


def invoke(*args: str) -> tuple[int, str, str]:
    return invoke_cli(*args)


def job_file(tmp_path: Path, name: str, base_url: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(reference_body(name, base_url)))
    return str(path)


def run_job_file(
    config_file: tuple[Path, Deployed], tmp_path: Path, name: str, base_url: str, *flags: str
) -> tuple[int, str, str]:
    """`imgflow run --job` of the reference job `name` with the deployment's config."""
    config, _ = config_file
    job = job_file(tmp_path, name, base_url)
    return invoke("run", "--job", job, "--config", str(config), *flags)


def test_run_and_status_of_a_failing_job(
    config_file: tuple[Path, Deployed], flags: StaticServer, tmp_path: Path
) -> None:
    config, _ = config_file
    job = job_file(tmp_path, "fail", flags.base_url)
    code, stdout, stderr = invoke("run", "--job", job, "--config", str(config), "-o", "json")
    assert code == 1, stderr
    doc = json.loads(stdout)
    assert doc["backend"] == "aws" and doc["state"] == "failed"
    assert doc["cause"] == FAIL_CAUSE
    assert doc["summary"] == {"total": 5, "stored": 4, "skipped": 0, "failed": 1}
    [failed] = [r for r in doc["results"] if r["outcome"] == "failed"]
    assert failed["error"] == f"Could not find: {flags.base_url}/zz/zz.gif"
    assert FAIL_CAUSE in stderr

    arn = doc["executionArn"]
    code, stdout, _ = invoke("status", arn, "--config", str(config))
    assert code == 1
    assert "Could not find" in stdout and "zz/zz.gif" in stdout
    assert "5 images: 4 stored, 0 skipped, 1 failed" in stdout and "[failed]" in stdout
    assert f"execution: {arn}" in stdout.splitlines()  # to follow it later, unwrapped

    code, stdout, stderr = invoke("run", "--job", job, "--config", str(config), "-o", "json")
    assert code == 1 and "submitted before" in stderr
    assert json.loads(stdout)["executionArn"] == arn


def test_run_no_wait_then_status(
    config_file: tuple[Path, Deployed], flags: StaticServer, tmp_path: Path
) -> None:
    config, _ = config_file
    job = job_file(tmp_path, "success", flags.base_url)
    code, stdout, stderr = invoke("run", "--job", job, "--config", str(config), "--no-wait")
    assert code == 0, stderr
    arn = stdout.strip()
    assert ":execution:" in arn
    deadline = time.monotonic() + 60
    while True:
        code, stdout, _ = invoke("status", arn, "--config", str(config), "-o", "json")
        doc = json.loads(stdout)
        if doc["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert code == 0 and doc["state"] == "succeeded"
    assert doc["summary"] == {"total": 101, "stored": 101, "skipped": 0, "failed": 0}
    assert doc["duplicates"] == 1
    assert len(doc["results"]) == 101


def test_status_of_an_unknown_execution(config_file: tuple[Path, Deployed]) -> None:
    config, deployed = config_file
    arn = deployed.state_machine_arn.replace(":stateMachine:", ":execution:") + ":nope"
    code, _, stderr = invoke("status", arn, "--config", str(config))
    assert code == 2 and "no such execution" in stderr


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, StaticServer]]:
    """Two of the flags served from a folder the test can add files to."""
    with flag_site(tmp_path / "site", ["ad/ad.gif", "ae/ae.gif"]) as server:
        yield tmp_path / "site", server


def test_retry_new_and_the_executions_listing(
    config_file: tuple[Path, Deployed], site: tuple[Path, StaticServer], tmp_path: Path
) -> None:
    config, _ = config_file
    root, server = site
    paths = ["ad/ad.gif", "af/af.gif", "ae/ae.gif", "ag/ag.gif"]  # af and ag missing at first
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"baseUrl": server.base_url, "resourcePaths": paths}))
    common = ("--config", str(config), "-o", "json")

    code, stdout, stderr = invoke("run", "--job", str(job), *common)
    assert code == 1, stderr
    first = json.loads(stdout)
    assert first["summary"]["failed"] == 2

    code, stdout, stderr = invoke("run", "--job", str(job), *common)
    assert "submitted before" in stderr and "--new" in stderr and "imgflow retry" in stderr
    assert json.loads(stdout)["executionArn"] == first["executionArn"]

    publish(root, "af/af.gif")
    publish(root, "ag/ag.gif")
    code, stdout, stderr = invoke("retry", first["executionArn"], *common)
    assert code == 0, stderr
    retry = validate(json.loads(stdout), "run")
    assert f"retrying 2 failed images of {first['run']}" in stderr
    assert retry["run"].startswith(first["run"] + "--retry-")
    assert retry["summary"] == {"total": 2, "stored": 2, "skipped": 0, "failed": 0}
    assert sorted(r["url"] for r in retry["results"]) == [
        f"{server.base_url}/af/af.gif",
        f"{server.base_url}/ag/ag.gif",
    ]

    # The first execution, shown again (status, or the same job run again), is the job as
    # it is now: each image's latest outcome, the retry's state.
    for again in (("status", first["executionArn"]), ("run", "--job", str(job))):
        code, stdout, stderr = invoke(*again, *common)
        assert code == 0, (again, stderr)
        latest = validate(json.loads(stdout), "run")
        assert (latest["run"], latest["state"]) == (first["run"], "succeeded")
        assert latest["summary"] == {"total": 4, "stored": 4, "skipped": 0, "failed": 0}
        assert sorted(r["url"] for r in latest["results"]) == sorted(
            f"{server.base_url}/{path}" for path in paths
        )
        assert latest["retries"] == [retry["run"]]
    code, stdout, _ = invoke("status", first["run"], "--config", str(config))
    assert code == 0 and f"with retries: {retry['run']}" in stdout

    # Retrying by name finds nothing left to do; nothing is started.
    code, _, stderr = invoke("retry", retry["run"], "--config", str(config))
    assert code == 0 and "nothing to retry" in stderr

    # --new runs the whole job again; what is stored is skipped.
    code, stdout, stderr = invoke("run", "--job", str(job), "--new", *common)
    assert code == 0, stderr
    fresh = json.loads(stdout)
    assert fresh["run"].startswith(first["run"] + "--new-")
    assert fresh["summary"] == {"total": 4, "stored": 0, "skipped": 4, "failed": 0}

    code, stdout, stderr = invoke("status", *common)
    assert code == 0, stderr
    listed = validate(json.loads(stdout), "status-executions")["executions"]
    assert [e["name"] for e in listed] == [fresh["run"], retry["run"], first["run"]]
    assert [e["parent"] for e in listed] == [None, first["run"], None]
    assert [e["state"] for e in listed] == ["succeeded", "succeeded", "failed"]
    assert listed[2]["summary"] == {"total": 4, "stored": 2, "skipped": 0, "failed": 2}

    code, stdout, _ = invoke("status", "--limit", "1", *common)
    assert [e["name"] for e in json.loads(stdout)["executions"]] == [fresh["run"]]
    code, stdout, _ = invoke("status", "--config", str(config))
    assert "retry of" in stdout and "succeeded" in stdout


def test_retry_and_new_refuse_what_they_cannot_do(
    config_file: tuple[Path, Deployed], flags: StaticServer, tmp_path: Path
) -> None:
    config, _ = config_file
    code, _, stderr = invoke("retry", "never-ran", "--config", str(config))
    assert code == 2 and "no such execution" in stderr
    job = job_file(tmp_path, "success", flags.base_url)
    code, _, stderr = invoke("run", "--job", job, "--backend", "local", "--new")
    assert code == 2 and "--new go with --backend aws" in stderr
    code, _, stderr = invoke("run", "--job", job, "--config", str(config), "--force")
    assert code == 2 and "--new starts a fresh execution" in stderr


def test_max_batches_is_refused_on_aws_in_one_line(
    config_file: tuple[Path, Deployed], flags: StaticServer, tmp_path: Path
) -> None:
    # The Map's concurrency is part of the deployed definition (job.max_batches at deploy).
    code, _, stderr = run_job_file(
        config_file, tmp_path, "success", flags.base_url, "--max-batches", "2"
    )
    assert code == 2 and "--max-batches" in stderr and "deploy" in stderr
    assert len(stderr.strip().splitlines()) == 1
