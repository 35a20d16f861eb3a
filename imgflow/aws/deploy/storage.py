"""Plan the S3 image bucket and the DynamoDB index table."""

from __future__ import annotations

import json
from typing import Any

from imgflow.aws.client import AwsError, aws_errors, optional
from imgflow.aws.deploy.context import Context, pairs_to_dict, tag_pairs
from imgflow.aws.deploy.plan import Step, step
from imgflow.errors import DeployError
from infra.iam import JOBS_PREFIX, bucket_policy

BUCKET = "s3 bucket"
TABLE = "dynamodb table"
LIFECYCLE_RULE = "imgflow-glacier-ir"
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ENCRYPTION: dict[str, Any] = {
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
}


ABORT_UPLOADS_RULE = "imgflow-abort-incomplete-uploads"
JOBS_RULE = "imgflow-expire-job-objects"
ABORT_AFTER_DAYS = 1


def lifecycle_rules(ctx: Context) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules: multipart uploads a stopped function left behind are
    aborted after a day; job objects (jobs/) expire after `storage.jobs_expire_days`;
    images go to Glacier Instant Retrieval after `storage.glacier_after_days`."""
    rules: list[dict[str, Any]] = [
        {
            "ID": ABORT_UPLOADS_RULE,
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS},
        }
    ]
    expire = ctx.cfg.storage.jobs_expire_days
    if expire is not None:
        rules.append(
            {
                "ID": JOBS_RULE,
                "Status": "Enabled",
                "Filter": {"Prefix": JOBS_PREFIX},
                "Expiration": {"Days": expire},
            }
        )
    days = ctx.cfg.storage.glacier_after_days
    if days is not None:
        rules.append(
            {
                "ID": LIFECYCLE_RULE,
                "Status": "Enabled",
                "Filter": {"Prefix": ctx.cfg.storage.prefix},
                "Transitions": [{"Days": days, "StorageClass": "GLACIER_IR"}],
            }
        )
    return rules


def _rule_key(rule: Any) -> tuple[Any, ...]:
    transitions = [(t.get("Days"), t.get("StorageClass")) for t in rule.get("Transitions", [])]
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix"))
    abort = (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation")
    expire = (rule.get("Expiration") or {}).get("Days")
    return (rule.get("ID"), rule.get("Status"), prefix, tuple(transitions), abort, expire)


def _bucket_changes(ctx: Context) -> list[str]:
    s3, bucket = ctx.aws.s3(), ctx.names.bucket
    changes = []
    tagging = optional(lambda: s3.get_bucket_tagging(Bucket=bucket))
    tags = pairs_to_dict(tagging["TagSet"]) if tagging else {}
    ctx.check_owned("bucket", BUCKET, bucket, tags)
    if ctx.missing_tags(tags):
        changes.append("tags")
    block = optional(lambda: s3.get_public_access_block(Bucket=bucket))
    if not block or dict(block["PublicAccessBlockConfiguration"]) != PUBLIC_ACCESS_BLOCK:
        changes.append("public access block")
    if not optional(lambda: s3.get_bucket_encryption(Bucket=bucket)):
        changes.append("encryption")
    policy = optional(lambda: s3.get_bucket_policy(Bucket=bucket))
    wanted = bucket_policy(ctx.names) if ctx.cfg.storage.tls_only else None
    if (json.loads(policy["Policy"]) if policy else None) != wanted:
        changes.append("TLS-only policy")
    lifecycle = optional(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket))
    actual = lifecycle["Rules"] if lifecycle else []
    if sorted(map(_rule_key, actual)) != sorted(map(_rule_key, lifecycle_rules(ctx))):
        changes.append("lifecycle")
    return changes


def _bucket_exists(ctx: Context) -> bool:
    return optional(lambda: ctx.aws.s3().head_bucket(Bucket=ctx.names.bucket)) is not None


def _bucket_answers(ctx: Context) -> bool:
    """True when our bucket exists (False when it does not or is not ours to look at)."""
    try:
        return _bucket_exists(ctx)
    except AwsError:
        return False


def bucket_step(ctx: Context) -> Step:
    """Create or update the image bucket: private, encrypted, TLS only, lifecycle, tags."""
    bucket = ctx.names.bucket
    with ctx.reading(BUCKET, bucket):
        exists = _bucket_exists(ctx)
        changes = _bucket_changes(ctx) if exists else []
    everything = ["tags", "public access block", "encryption", "lifecycle"]
    if ctx.cfg.storage.tls_only:
        everything.insert(3, "TLS-only policy")
    todo = changes if exists else everything

    def apply() -> None:
        s3 = ctx.aws.s3()
        if not exists:
            location = {}
            if ctx.aws.region != "us-east-1":
                location = {"CreateBucketConfiguration": {"LocationConstraint": ctx.aws.region}}
            # Recorded before the call: S3 cannot tag a bucket as it creates it, so a deploy
            # that dies before hearing the answer would leave an untagged bucket that is ours
            # only by this record (the next deploy refuses it and teardown skips it).
            ctx.state.remember("bucket", name=bucket)
            try:
                with aws_errors("s3:CreateBucket"):
                    s3.create_bucket(Bucket=bucket, **location)  # type: ignore[arg-type]
            except AwsError:
                if not _bucket_answers(ctx):
                    ctx.state.forget("bucket")
                raise
        if "tags" in todo:
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_pairs(ctx.tags)})
        if "public access block" in todo:
            s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK,  # type: ignore[arg-type]
            )
        if "encryption" in todo:
            s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration=ENCRYPTION,  # type: ignore[arg-type]
            )
        if "TLS-only policy" in todo and ctx.cfg.storage.tls_only:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy(ctx.names)))
        elif "TLS-only policy" in todo:
            s3.delete_bucket_policy(Bucket=bucket)
        if "lifecycle" in todo:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={"Rules": lifecycle_rules(ctx)},  # type: ignore[typeddict-item]
            )

    days = ctx.cfg.storage.glacier_after_days
    lifecycle = "no lifecycle" if days is None else f"Glacier IR after {days} d"
    tls = "TLS only" if ctx.cfg.storage.tls_only else "TLS NOT enforced"
    settings = ("private", "encrypted", tls, lifecycle)
    ids = {"name": bucket}
    return step("bucket", BUCKET, bucket, changes, apply, exists=exists, ids=ids, settings=settings)


def table_step(ctx: Context) -> Step:
    """Create or update the index table: partition key `url`, on-demand billing, tags."""
    ddb, table = ctx.aws.dynamodb(), ctx.names.table
    changes: list[str] = []
    arn = ctx.names.table_arn
    with ctx.reading(TABLE, table):
        found = optional(lambda: ddb.describe_table(TableName=table))
        described = found["Table"] if found else None
        if described is not None:
            arn = described["TableArn"]
            tags = pairs_to_dict(ddb.list_tags_of_resource(ResourceArn=arn).get("Tags", []))
            ctx.check_owned("table", TABLE, table, tags)
            if [(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]] != [
                ("url", "HASH")
            ]:
                raise DeployError(
                    f"{TABLE} {table}: its key is not `url`; a key cannot be changed in place: "
                    "delete the table (imgflow teardown --delete-data) or use another deployment"
                )
            billing = described.get("BillingModeSummary", {}).get("BillingMode")
            if billing != "PAY_PER_REQUEST":
                changes.append("on-demand billing")
            if ctx.missing_tags(tags):
                changes.append("tags")

    def apply() -> None:
        if described is None:
            ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "url", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "url", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
                Tags=tag_pairs(ctx.tags),
            )
            ctx.state.remember("table", name=table, arn=arn)
            return
        if "on-demand billing" in changes:
            ddb.update_table(TableName=table, BillingMode="PAY_PER_REQUEST")
        if "tags" in changes:
            ddb.tag_resource(ResourceArn=arn, Tags=tag_pairs(ctx.tags))

    ids = {"name": table, "arn": arn}
    settings = ("key url", "on-demand")
    exists = described is not None
    return step("table", TABLE, table, changes, apply, exists=exists, ids=ids, settings=settings)
