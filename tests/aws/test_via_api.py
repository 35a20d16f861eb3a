"""`imgflow run --backend aws --via-api`: the original body, SigV4-signed, to the HTTP API.

moto records HTTP APIs but does not serve them, so `HttpApiDouble` serves the API deploy
made, at the URL deploy recorded (unchanged), routing exactly the deployed route and method
and verifying the SigV4 signature for the deployed region and service.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from lambda_invoke import patched
from pipeline_env import (
    Deployed,
    deploy_pipeline,
    invoke_cli,
    pipeline_config,
    reference_body,
)
from support.aws_moto import wait_for_execution
from support.http_api import HttpApiDouble

from imgflow.aws.client import Aws
from imgflow.aws.deploy import deploy
from imgflow.aws.job_api import MAX_API_BODY, api_body, start_via_api
from imgflow.aws.runtime.jobs import get_json
from imgflow.config import with_overrides
from imgflow.demo.server import StaticServer
from imgflow.errors import UsageError

# The credentials the CLI signs with in these tests (set in the process's environment).
TEST_CREDENTIALS = Credentials("AKIAVIAAPITEST000001", "via-api-test-secret", "via-api-token")


def write_config(path: Path, deployed: Deployed, state_dir: Path, **extra: Any) -> Path:
    settings = {
        "backend": "aws",
        "deployment": deployed.cfg.deployment,
        "aws": {"region": "us-east-1", "state_dir": str(state_dir)},
        **extra,
    }
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture
def deployed_api(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Deployed, HttpApiDouble]]:
    state_dir = tmp_path / "deployed"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", str(TEST_CREDENTIALS.token))
    with patched():
        deployed = deploy_pipeline(aws, pipeline_config(state_dir))
        url = deployed.outputs.api_url
        assert url and url.startswith("https://") and url.endswith("/jobs")
        api_id = url.removeprefix("https://").split(".", 1)[0]
        double = HttpApiDouble(aws, api_id, TEST_CREDENTIALS, tmp_path)
        config = write_config(tmp_path / "imgflow.yaml", deployed, state_dir)
        try:
            with double.reachable(monkeypatch):
                yield config, deployed, double
        finally:
            double.close()


def test_the_original_body_goes_through_the_api_signed(
    deployed_api: tuple[Path, Deployed, HttpApiDouble], flags: StaticServer, tmp_path: Path
) -> None:
    config, _, api = deployed_api
    body = reference_body("fail", flags.base_url)
    job = tmp_path / "fail.json"
    job.write_text(json.dumps(body))
    code, stdout, stderr = invoke_cli(
        "run", "--job", str(job), "--via-api", "--config", str(config), "-o", "json"
    )
    assert code == 1 and stdout, stderr
    doc = json.loads(stdout)
    assert doc["summary"] == {"total": 5, "stored": 4, "skipped": 0, "failed": 1}
    assert api.seen.requests == [("POST", "/jobs", 200)]
    assert api.seen.bodies == [body]


def test_unsigned_when_the_api_is_open(
    aws: Aws,
    deployed_api: tuple[Path, Deployed, HttpApiDouble],
    flags: StaticServer,
    tmp_path: Path,
) -> None:
    config, deployed, api = deployed_api
    open_cfg = with_overrides(pipeline_config(tmp_path / "deployed"), api={"auth": "none"})
    deploy(open_cfg, aws, sleep=lambda seconds: None)
    api.redeployed()
    assert [r.authorization for r in api.routes] == ["NONE"]
    write_config(config, deployed, tmp_path / "deployed", api={"auth": "none"})
    paths = tmp_path / "paths.txt"
    paths.write_text("ad/ad.gif\nae/ae.gif\n")
    code, stdout, stderr = invoke_cli(
        "run",
        "--base-url",
        flags.base_url,
        "--paths-file",
        str(paths),
        "--via-api",
        "--config",
        str(config),
        "-o",
        "json",
    )
    assert code == 0, stderr
    assert json.loads(stdout)["summary"]["stored"] == 2
    assert api.seen.requests == [("POST", "/jobs", 200)]


def signed(url: str, body: bytes, region: str, service: str = "execute-api") -> dict[str, str]:
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(TEST_CREDENTIALS, service, region).add_auth(request)
    return dict(request.headers.items())


def test_the_api_double_refuses_what_api_gateway_refuses(
    deployed_api: tuple[Path, Deployed, HttpApiDouble],
) -> None:
    _, deployed, api = deployed_api
    url = str(deployed.outputs.api_url)
    body = b'{"baseUrl": "https://h", "resourcePaths": []}'

    def post(target: str, headers: dict[str, str], data: bytes = body) -> httpx.Response:
        return httpx.post(target, content=data, headers=headers)

    root = url.removesuffix("/jobs")
    assert (
        post(root + "/jobs/jobs", signed(root + "/jobs/jobs", body, "us-east-1")).status_code == 404
    )
    assert httpx.get(url, headers=signed(url, b"", "us-east-1")).status_code == 404
    assert post(url, {"Content-Type": "application/json"}).json() == {
        "message": "Missing Authentication Token"
    }
    wrong_region = post(url, signed(url, body, "us-west-2"))
    assert wrong_region.status_code == 403 and "us-east-1/execute-api" in wrong_region.text
    assert post(url, signed(url, body, "us-east-1", "states")).status_code == 403
    tampered = post(url, signed(url, body, "us-east-1"), body.replace(b"h", b"x"))
    assert tampered.status_code == 403 and "does not match" in tampered.text
    assert api.seen.bodies == []


def test_a_body_too_large_for_execution_input_is_refused() -> None:
    paths = [f"{i:06d}/{i:06d}.gif" for i in range(MAX_API_BODY // 20)]
    with pytest.raises(UsageError, match="run without --via-api"):
        api_body({"baseUrl": "https://h", "resourcePaths": paths, "lambdaConcur": 2})


def test_a_job_over_the_input_limit_goes_as_a_reference_to_its_upload(
    aws: Aws, deployed_api: tuple[Path, Deployed, HttpApiDouble], flags: StaticServer
) -> None:
    """Over 256 KB of JSON, the CLI uploads the job and sends {"manifest": "s3://..."};
    the API starts it and the plan step streams the upload."""
    _, deployed, api = deployed_api
    segment = "s" * 240
    paths = [f"long{n:04d}/{segment}/{segment}/{segment}/{segment}.gif" for n in range(270)]
    body = {"baseUrl": flags.base_url, "resourcePaths": paths, "lambdaConcur": 4}
    assert len(json.dumps(body)) > MAX_API_BODY
    url = str(deployed.outputs.api_url)
    arn = start_via_api(aws, url, body, sign=True, bucket=deployed.bucket)
    (sent,) = api.seen.bodies
    assert set(sent) == {"manifest"} and sent["manifest"].startswith(
        f"s3://{deployed.bucket}/jobs/"
    )
    execution = wait_for_execution(aws, arn, timeout=240)
    assert execution["status"] == "FAILED"  # none of the paths is on the server
    name = execution["name"]
    summary = get_json(aws.s3(), deployed.bucket, f"jobs/{name}/summary.json")
    assert (summary["total"], summary["failed"]) == (270, 270)


def test_the_curl_command_deploy_prints_is_accepted_by_the_api(
    deployed_api: tuple[Path, Deployed, HttpApiDouble], flags: StaticServer, tmp_path: Path
) -> None:
    """`imgflow deploy` prints a curl --aws-sigv4 command; run as printed (through the
    double's proxy, trusting its CA), the API verifies its signature and starts the job."""
    config, _, api = deployed_api
    code, stdout, stderr = invoke_cli("deploy", "--config", str(config), "-o", "json")
    assert code == 0, stderr
    command = json.loads(stdout)["apiCommand"]
    assert command.startswith("curl --aws-sigv4 'aws:amz:us-east-1:execute-api' ")
    assert "x-amz-security-token: $AWS_SESSION_TOKEN" in command
    body = reference_body("success", flags.base_url)
    (tmp_path / "job.json").write_text(json.dumps(body))
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS.access_key,
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS.secret_key,
        "AWS_SESSION_TOKEN": str(TEST_CREDENTIALS.token),
        "HTTPS_PROXY": api.proxy_url,
        "CURL_CA_BUNDLE": str(api.ca_file),
    }
    ran = subprocess.run(
        ["sh", "-c", command + " --silent --show-error"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "executionArn" in json.loads(ran.stdout)
    assert api.seen.requests == [("POST", "/jobs", 200)]
    assert api.seen.bodies == [body]


def test_a_body_of_full_urls_goes_through_the_api_and_runs(
    aws: Aws, deployed_api: tuple[Path, Deployed, HttpApiDouble], flags: StaticServer
) -> None:
    """The HTTP API takes ``urls`` (strings or objects with metadata) beside the original
    body; the execution plans them in lanes and runs them."""
    _, deployed, api = deployed_api
    url = str(deployed.outputs.api_url)
    body = {"urls": [f"{flags.base_url}/ad/ad.gif", {"url": f"{flags.base_url}/ae/ae.gif", "n": 1}]}
    data = json.dumps(body).encode()
    answer = httpx.post(url, content=data, headers=signed(url, data, "us-east-1"))
    assert answer.status_code == 200, answer.text
    execution = wait_for_execution(aws, answer.json()["executionArn"])
    assert execution["status"] == "SUCCEEDED", execution
    rows = aws.dynamodb().scan(TableName=deployed.table)["Items"]
    assert {r["url"]["S"]: r.get("meta", {}).get("S") for r in rows} == {
        f"{flags.base_url}/ad/ad.gif": None,
        f"{flags.base_url}/ae/ae.gif": '{"n":1}',
    }
    assert api.seen.bodies == [body]
