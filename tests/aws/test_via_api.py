"""`imgflow run --backend aws --via-api`: the original body, SigV4-signed, to the HTTP API.

moto's HTTP APIs do not run integrations, so a loopback server stands in for API Gateway:
it checks the SigV4 Authorization header, then does what the deployed
StepFunctions-StartExecution integration does (Input = the request body, unchanged).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lambda_invoke import patched
from pipeline_env import (
    FLAGS_DIR,
    Deployed,
    deploy_pipeline,
    invoke_cli,
    pipeline_config,
    reference_body,
)

from imgflow.aws.client import Aws
from imgflow.aws.job_api import MAX_API_BODY, api_body
from imgflow.demo.server import StaticServer, serve_directory
from imgflow.errors import UsageError


class FakeApi:
    """A stand-in for the deployed HTTP API route."""

    def __init__(self, aws: Aws, state_machine_arn: str) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                api.authorizations.append(self.headers.get("Authorization", ""))
                api.bodies.append(json.loads(body))
                started = aws.stepfunctions().start_execution(
                    stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=body.decode()
                )
                reply = json.dumps({"executionArn": started["executionArn"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flags() -> Iterator[StaticServer]:
    with serve_directory(FLAGS_DIR) as server:
        yield server


@pytest.fixture
def deployed_api(aws: Aws, tmp_path: Path) -> Iterator[tuple[Path, Deployed, FakeApi]]:
    state_dir = tmp_path / "deployed"
    with patched():
        deployed = deploy_pipeline(aws, pipeline_config(state_dir))
        fake = FakeApi(aws, deployed.state_machine_arn)
        state_file = state_dir / f"{deployed.cfg.deployment}.json"
        text = state_file.read_text()
        assert deployed.outputs.api_url and deployed.outputs.api_url in text
        state_file.write_text(text.replace(deployed.outputs.api_url, fake.url))
        config = tmp_path / "imgflow.yaml"
        config.write_text(
            json.dumps(
                {
                    "backend": "aws",
                    "deployment": deployed.cfg.deployment,
                    "aws": {"region": "us-east-1", "state_dir": str(state_dir)},
                }
            )
        )
        try:
            yield config, deployed, fake
        finally:
            fake.close()


def test_the_original_body_goes_through_the_api_signed(
    deployed_api: tuple[Path, Deployed, FakeApi], flags: StaticServer, tmp_path: Path
) -> None:
    config, _, fake = deployed_api
    body = reference_body("fail", flags.base_url)
    job = tmp_path / "fail.json"
    job.write_text(json.dumps(body))
    code, stdout, stderr = invoke_cli(
        "run", "--job", str(job), "--via-api", "--config", str(config), "-o", "json"
    )
    assert code == 1, stderr
    doc = json.loads(stdout)
    assert doc["summary"] == {"total": 5, "stored": 4, "skipped": 0, "failed": 1}
    assert fake.bodies == [body]
    [authorization] = fake.authorizations
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/us-east-1/execute-api/aws4_request" in authorization


def test_unsigned_when_the_api_is_open(
    deployed_api: tuple[Path, Deployed, FakeApi], flags: StaticServer, tmp_path: Path
) -> None:
    config, _, fake = deployed_api
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "api": {"auth": "none"}}))
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
    assert fake.authorizations == [""]


def test_a_body_too_large_for_execution_input_is_refused() -> None:
    paths = [f"{i:06d}/{i:06d}.gif" for i in range(MAX_API_BODY // 20)]
    with pytest.raises(UsageError, match="run without --via-api"):
        api_body({"baseUrl": "https://h", "resourcePaths": paths, "lambdaConcur": 2})
