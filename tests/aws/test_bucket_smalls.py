"""The bucket's lifecycle rules and the download role's read for CopyObject."""

from __future__ import annotations

import json
from collections.abc import Callable

from moto.iam.access_control import IAMPolicy, PermissionResult

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeployResult
from imgflow.config import Config
from infra.iam import download_policy
from infra.names import Names


def test_the_download_role_may_read_images_for_copy_object() -> None:
    # store.py sets a large image's final type with an in-place CopyObject, which needs
    # s3:GetObject on the source as well as s3:PutObject on the target.
    names = Names(deployment="d", account="123456789012", region="us-east-1")
    policy = IAMPolicy(json.dumps(download_policy(names, "images/")))
    source = f"{names.bucket_arn}/images/h/a.gif"
    assert policy.is_action_permitted("s3:GetObject", source) is PermissionResult.PERMITTED
    assert policy.is_action_permitted("s3:PutObject", source) is PermissionResult.PERMITTED


def test_lifecycle_aborts_uploads_and_expires_job_objects(
    aws: Aws, make_cfg: Callable[..., Config], run_deploy: Callable[..., DeployResult]
) -> None:
    cfg = make_cfg(storage={"jobs_expire_days": 7})
    bucket = run_deploy(cfg).outputs.bucket
    rules = aws.s3().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    by_id = {rule["ID"]: rule for rule in rules}
    aborts = [r for r in rules if r.get("AbortIncompleteMultipartUpload")]
    assert [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in aborts] == [1]
    expiring = [r for r in by_id.values() if r.get("Expiration")]
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in expiring] == [("jobs/", 7)]
