"""A deployment of the pipeline on moto for tests and benchmarks, and what to inspect it with.

`deploy_direct` creates the bucket, table, topic, roles, functions (the real zip) and the
state machine with plain API calls: a stand-in until the deployer can be used here. An SQS
queue subscribed to the topic receives the failure notices.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgflow.aws.client import Aws
from imgflow.aws.zips import lambda_zip
from imgflow.config import AwsConfig, Config
from infra.iam import trust_policy
from infra.lambda_env import environment
from infra.names import FUNCTION_ROLES, Names
from infra.statemachine import definition

FLAGS_DIR = Path(__file__).resolve().parents[2] / "imgflow" / "demo" / "flags"
REFERENCE = Path("/work/shared/reference/requests")
MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@dataclass(frozen=True)
class Deployed:
    """What a test needs to know about a deployment."""

    cfg: Config
    names: Names
    bucket: str
    table: str
    topic_arn: str
    state_machine_arn: str
    queue_url: str


def pipeline_config(**job: Any) -> Config:
    """The default config, allowed to fetch from 127.0.0.1."""
    cfg = Config(deployment="imgflow-test", aws=AwsConfig(allow_private_targets=True))
    if job:
        cfg = dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, **job))
    return cfg


def deploy_direct(aws: Aws, cfg: Config) -> Deployed:
    """Create everything the pipeline needs, directly."""
    names = Names(cfg.deployment, aws.account_id(), aws.region)
    s3, ddb, sns, sqs = aws.s3(), aws.dynamodb(), aws.sns(), aws.sqs()
    s3.create_bucket(Bucket=names.bucket)
    ddb.create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "url", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "url", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic_arn = sns.create_topic(Name=names.topic)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{cfg.deployment}-notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    iam = aws.iam()
    role_arn = iam.create_role(
        RoleName=names.role("lambda"),
        AssumeRolePolicyDocument=json.dumps(trust_policy("lambda.amazonaws.com")),
    )["Role"]["Arn"]
    package = lambda_zip()
    env = environment(cfg, names.bucket, names.table, topic_arn)
    arns = {}
    for role in FUNCTION_ROLES:
        arns[role] = aws.lambda_().create_function(
            FunctionName=names.function(role),
            Runtime="python3.12",
            Role=role_arn,
            Handler=f"lambdas.{role}.handler",
            Code={"ZipFile": package.data},
            Timeout=300,
            MemorySize=1024,
            Environment={"Variables": env},
        )["FunctionArn"]
    sm_role = iam.create_role(
        RoleName=names.role("statemachine"),
        AssumeRolePolicyDocument=json.dumps(trust_policy("states.amazonaws.com")),
    )["Role"]["Arn"]
    doc = definition(
        plan_arn=arns["plan"],
        download_arn=arns["download"],
        consolidate_arn=arns["consolidate"],
        topic_arn=topic_arn,
        bucket=names.bucket,
        max_batches=cfg.job.max_batches,
    )
    sm_arn = aws.stepfunctions().create_state_machine(
        name=names.state_machine, definition=json.dumps(doc), roleArn=sm_role
    )["stateMachineArn"]
    return Deployed(cfg, names, names.bucket, names.table, topic_arn, sm_arn, queue_url)


def notices(aws: Aws, queue_url: str) -> list[str]:
    """The messages the failure topic delivered so far."""
    answer = aws.sqs().receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [m["Body"] for m in answer.get("Messages", [])]


def reference_body(name: str, base_url: str) -> dict[str, Any]:
    """success.json or fail.json with the base URL replaced."""
    body: dict[str, Any] = json.loads((REFERENCE / f"{name}.json").read_text())
    return {**body, "baseUrl": base_url}
