"""A deployment of the pipeline on moto for tests and benchmarks, and what to inspect it with.

`deploy_pipeline` deploys with imgflow's deployer (the real zip and state machine) and
subscribes an SQS queue to the failure topic to receive the notices.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeploymentOutputs, deploy
from imgflow.config import Config, from_mapping

FLAGS_DIR = Path(__file__).resolve().parents[2] / "imgflow" / "demo" / "flags"
# The original pipeline's two request bodies (success.sh and fail.sh), kept as test data.
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "requests"
MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@dataclass(frozen=True)
class Deployed:
    """What a test needs to know about a deployment."""

    cfg: Config
    outputs: DeploymentOutputs
    bucket: str
    table: str
    topic_arn: str
    state_machine_arn: str
    queue_url: str


def pipeline_config(
    state_dir: Path, deployment: str = "imgflow-test", layout: str = "files", **job: Any
) -> Config:
    """A config allowed to fetch from 127.0.0.1, its deploy state kept in `state_dir`."""
    return from_mapping(
        {
            "deployment": deployment,
            "aws": {
                "region": "us-east-1",
                "state_dir": str(state_dir),
                "allow_private_targets": True,
            },
            "job": job,
            "output": {"layout": layout},
        },
        env={},
    )


def deploy_pipeline(aws: Aws, cfg: Config) -> Deployed:
    """Deploy `cfg` with imgflow's deployer and subscribe an SQS queue to the failure topic."""
    outputs = deploy(cfg, aws, sleep=lambda seconds: None).outputs
    sqs, sns = aws.sqs(), aws.sns()
    queue_url = sqs.create_queue(QueueName=f"{cfg.deployment}-notices")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=outputs.topic_arn,
        Protocol="sqs",
        Endpoint=attributes["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return Deployed(
        cfg,
        outputs,
        outputs.bucket,
        outputs.table,
        outputs.topic_arn,
        outputs.state_machine_arn,
        queue_url,
    )


def notices(aws: Aws, queue_url: str) -> list[str]:
    """The messages the failure topic delivered so far."""
    answer = aws.sqs().receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [m["Body"] for m in answer.get("Messages", [])]


def reference_body(name: str, base_url: str) -> dict[str, Any]:
    """success.json or fail.json with the base URL replaced."""
    body: dict[str, Any] = json.loads((REFERENCE / f"{name}.json").read_text())
    return {**body, "baseUrl": base_url}


def invoke_cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI in process, without the IMGFLOW_* variables in-process Lambdas left set.

    The Lambda patch keeps each function's environment applied (see moto-notes), and the
    deployment's IMGFLOW_DEPLOYMENT would otherwise override the CLI's config.
    """
    from typer.testing import CliRunner

    from imgflow.cli.app import app

    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("IMGFLOW_")}
    result = CliRunner().invoke(app, list(args), env=clean)
    return result.exit_code, result.stdout, result.stderr
