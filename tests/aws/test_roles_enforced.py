"""The pipeline on a moto server that enforces IAM, each handler under its own role.

tests/support/iam_enforced.py runs the server: after a few free requests (spent here on an
administrator and its access key) every request must be signed by a known identity and be
allowed by its policies. The handlers run under their execution roles' credentials and
Step Functions' own calls under the state machine role's, so a permission missing from
infra/iam.py fails the run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from pipeline_env import FLAGS_DIR, deploy_pipeline, pipeline_config, reference_body
from support.aws_moto import check_stored, job_records, wait_for_execution
from support.processes import ServerProcess, port_written

from imgflow.aws.client import Aws, connect
from imgflow.aws.job import start_job
from imgflow.aws.runtime.robots_cache import S3RobotsCache
from imgflow.demo.server import StaticServer
from imgflow.engine.robots import Stored
from infra.statemachine import FAIL_CAUSE

SERVER = Path(__file__).resolve().parents[1] / "support" / "iam_enforced.py"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@pytest.fixture
def enforcing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """A session of an administrator on a fresh IAM-enforcing moto server."""
    port_file = tmp_path / "port"
    with ServerProcess(
        [sys.executable, str(SERVER), str(port_file)], port_written(port_file), timeout=60
    ):
        endpoint = f"http://127.0.0.1:{port_file.read_text()}"
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
        iam = connect(region="us-east-1", endpoint_url=endpoint).iam()
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        yield connect(region="us-east-1", endpoint_url=endpoint)


def test_the_pipeline_runs_with_each_role_enforced(
    enforcing: Aws, tmp_path: Path, flags: StaticServer
) -> None:
    aws = enforcing
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        _as_nobody(aws)
    assert unknown.value.response["Error"]["Code"] in {"InvalidAccessKeyId", "InvalidClientTokenId"}

    deployed = deploy_pipeline(aws, pipeline_config(tmp_path / "deployed", batch_size=2))
    body = reference_body("fail", flags.base_url)
    started = start_job(aws, deployed.bucket, deployed.state_machine_arn, body, 2)
    execution = wait_for_execution(aws, started.execution_arn, timeout=120)
    assert execution["status"] == "FAILED", execution
    assert execution.get("cause") == FAIL_CAUSE, execution
    job_id = started.execution_arn.rsplit(":", 1)[1]
    records = job_records(aws, deployed.bucket, job_id, 3)
    bodies = {
        f"{flags.base_url}/{p}": (FLAGS_DIR / p).read_bytes()
        for p in body["resourcePaths"]
        if (FLAGS_DIR / p).exists()
    }
    failed = [r for r in records if r["outcome"] == "failed"]
    assert [r["url"].rsplit("/", 1)[1] for r in failed] == ["zz.gif"]
    check_stored(
        aws,
        deployed.bucket,
        deployed.table,
        [r for r in records if r["outcome"] != "failed"],
        bodies,
    )
    # a job of full URLs: its lane reads each batch object (the download role's GetObject)
    urls = [f"{flags.base_url}/{p}" for p in ("ad/ad.gif", "ae/ae.gif", "af/af.gif")]
    lanes = start_job(aws, deployed.bucket, deployed.state_machine_arn, {"urls": urls}, 2)
    execution = wait_for_execution(aws, lanes.execution_arn, timeout=120)
    assert execution["status"] == "SUCCEEDED", execution


def _client_with(aws: Aws, service: str, key: dict[str, Any]) -> Any:
    """A boto3 client of `service` on the moto server, signed with the access `key`."""
    import boto3

    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=aws.endpoint_url,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )


def _as_nobody(aws: Aws) -> None:
    """A call signed by a key no IAM user has is refused once enforcement is on."""
    import boto3

    boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=aws.endpoint_url,
        aws_access_key_id="AKIANOBODY0000000000",
        aws_secret_access_key="nobody",
    ).list_buckets()


def test_a_policy_is_refused_what_it_does_not_grant(enforcing: Aws, tmp_path: Path) -> None:
    """The download role's deployed policy, given to a user: the index lookups it needs are
    allowed, a GetItem it does not need is refused. (moto cannot assume a service role for
    a user, so the policy is copied rather than the role assumed.)"""
    aws = enforcing
    deployed = deploy_pipeline(aws, pipeline_config(tmp_path / "deployed"))
    iam = aws.iam()
    role = f"{deployed.cfg.deployment}-download"
    policy = iam.get_role_policy(RoleName=role, PolicyName="imgflow")["PolicyDocument"]
    document = policy if isinstance(policy, str) else json.dumps(policy)
    iam.create_user(UserName="as-download")
    iam.put_user_policy(UserName="as-download", PolicyName="download", PolicyDocument=document)
    key = iam.create_access_key(UserName="as-download")["AccessKey"]
    as_download = _client_with(aws, "dynamodb", key)
    item = {"url": {"S": "https://example.com/a.gif"}}
    as_download.batch_get_item(RequestItems={deployed.table: {"Keys": [item]}})
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        as_download.get_item(TableName=deployed.table, Key=item)
    # moto answers in XML, which botocore's JSON parser reports as the bare status code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "is not authorized to perform: dynamodb:GetItem" in str(refused.value)
    # the job's robots cache: its objects are read and written, other job objects not read
    s3 = _client_with(aws, "s3", key)
    cache = S3RobotsCache(s3, deployed.bucket, "job-1")
    assert cache.get("http://a.test") is None  # none yet (AccessDenied: no ListBucket)
    cache.put("http://a.test", Stored(404, b"", 1.0))
    assert cache.get("http://a.test") == Stored(404, b"", 1.0)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket=deployed.bucket, Key="jobs/job-1/job.json")
