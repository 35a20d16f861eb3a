"""IAM policy documents for one deployment, built from its names and ARNs (no API calls).

Least privilege: each role is granted exactly the calls its code (or the service acting
for it) makes, and every statement names this deployment's own resources. The only
wildcards are trailing ones inside a named resource (objects under a prefix, a function's
versions, a state machine's executions, a function's log streams), plus the two AWS
documents as resource-less: CloudWatch Logs delivery for Step Functions logging and X-Ray's
trace upload (only when those are turned on).

The Lambda and Step Functions trust policies carry the confused-deputy condition
``aws:SourceAccount`` (the service may assume the role only on behalf of this account); the
state machine's also names its ``aws:SourceArn``.

No role trusts API Gateway: the API's job route invokes the submit Lambda under a
resource-based permission (imgflow/aws/deploy/api.py), so the former integration's
credentials role (``<name>-api``, StartExecution only) is no longer made, and a redeploy
deletes an older deployment's (infra/names.py FORMER_ROLE_PURPOSES). Should a role for API
Gateway be wanted, `trust_policy` gives it without conditions, as AWS documents for an
integration's credentials role (API Gateway developer guide, "Control access to a REST API
with IAM permissions"): API Gateway sends neither ``aws:SourceAccount`` nor
``aws:SourceArn`` when it assumes the role, so such a condition makes every request 500.
"""

from __future__ import annotations

from typing import Any

from infra.names import FUNCTION_ROLES, SUBMIT, Names

Policy = dict[str, Any]
Statement = dict[str, Any]

JOBS_PREFIX = "jobs/"
SHARDS_PREFIX = "shards/"  # the aws shards (imgflow/aws/runtime/shards.py)
LAMBDA_SERVICE = "lambda.amazonaws.com"
STATES_SERVICE = "states.amazonaws.com"
API_SERVICE = "apigateway.amazonaws.com"


def _policy(*statements: Statement) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def trust_policy(service: str, names: Names) -> Policy:
    """The assume-role policy letting `service` (e.g. lambda.amazonaws.com) use a role, on
    behalf of this account only (and, for Step Functions, of this state machine only);
    API Gateway's without conditions, which it could not meet."""
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if service == API_SERVICE:  # API Gateway sends neither source key (see above)
        return _policy(statement)
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": names.account}}
    if service == STATES_SERVICE:
        condition["ArnLike"] = {"aws:SourceArn": names.state_machine_arn}
    return _policy({**statement, "Condition": condition})


def _jobs_objects(names: Names) -> str:
    return f"{names.bucket_arn}/{JOBS_PREFIX}*"


def _logs(names: Names, role: str) -> Statement:
    """Write to the function's own log group, which deploy creates (so no CreateLogGroup).

    IAM names a log group by its ARN plus ``:*`` for these actions; that also covers the
    group's streams and nothing outside the group.
    """
    return _allow(
        "Logs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [f"{names.log_group_arn(role)}:*"],
    )


def plan_policy(names: Names) -> Policy:
    """The plan Lambda: read and write job objects."""
    return _policy(
        _allow("JobObjects", ["s3:GetObject", "s3:PutObject"], [_jobs_objects(names)]),
        _logs(names, "plan"),
    )


def download_policy(names: Names, prefix: str, *, shards: bool = False) -> Policy:
    """The download Lambda: store images and results; look up and write index rows in batches
    (BatchGetItem for skip-if-stored, BatchWriteItem for the rows; nothing else). With
    `shards` (output.layout: webdataset) it also writes a shard per batch under shards/
    (PutObject covers its multipart upload's create, parts and completion)."""
    uploads = [f"{names.bucket_arn}/{prefix}*"]
    if shards:
        uploads.append(f"{names.bucket_arn}/{SHARDS_PREFIX}*")
    return _policy(
        _allow("WriteObjects", ["s3:PutObject"], [*uploads, _jobs_objects(names)]),
        # A large image whose type changes at the end gets it by an in-place CopyObject,
        # which reads the source object (s3:GetObject) as well as writing the target.
        _allow("CopyImages", ["s3:GetObject"], [f"{names.bucket_arn}/{prefix}*"]),
        # A lane of a urls job reads each of its batches (jobs/<job-id>/batches/<n>.json).
        _allow("ReadLaneBatches", ["s3:GetObject"], [f"{_jobs_objects(names)}/batches/*"]),
        # Each host's robots.txt answer, kept once per job (jobs/<job-id>/robots/<hash>.json,
        # written under WriteObjects) for the job's later batches.
        _allow("ReadRobots", ["s3:GetObject"], [f"{_jobs_objects(names)}/robots/*"]),
        # A large image (or a shard) streams in as a multipart upload, aborted on failure.
        _allow("AbortUploads", ["s3:AbortMultipartUpload"], uploads),
        # A retried batch copies what its first attempt indexed from the shard it replaces.
        *([_allow("ReadShards", ["s3:GetObject"], uploads[1:])] if shards else []),
        _allow("Index", ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"], [names.table_arn]),
        _logs(names, "download"),
    )


def consolidate_policy(names: Names) -> Policy:
    """The consolidate Lambda: read, write and list job objects (it never reads the index)."""
    return _policy(
        _allow("JobObjects", ["s3:GetObject", "s3:PutObject"], [_jobs_objects(names)]),
        _allow(
            "ListJobs",
            ["s3:ListBucket"],
            [names.bucket_arn],
            Condition={"StringLike": {"s3:prefix": [f"{JOBS_PREFIX}*"]}},
        ),
        _logs(names, "consolidate"),
    )


# What Step Functions needs to deliver logs to CloudWatch Logs; AWS documents these as
# taking no resource-level permissions ("Resource": "*").
LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]
XRAY_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
]


def state_machine_policy(names: Names, *, logging: bool = True, xray: bool = False) -> Policy:
    """The state machine: invoke its Lambdas, publish to its topic, read the batch manifest
    (ItemReader) and write the Map's results (ResultWriter) under jobs/, its Map runs; with
    `logging` deliver its logs, with `xray` send traces."""
    functions = [names.function_arn(role) for role in FUNCTION_ROLES]
    statements = [
        _allow(
            "InvokeFunctions",
            ["lambda:InvokeFunction"],
            functions + [f"{arn}:*" for arn in functions],
        ),
        _allow("PublishFailures", ["sns:Publish"], [names.topic_arn]),
        _allow("JobObjects", ["s3:GetObject", "s3:PutObject"], [_jobs_objects(names)]),
        _allow(
            "WriteMapResults",
            ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            [_jobs_objects(names)],
        ),
        _allow("StartMapRuns", ["states:StartExecution"], [names.state_machine_arn]),
        _allow(
            "ManageMapRuns",
            ["states:DescribeExecution", "states:StopExecution"],
            [names.executions_arn],
        ),
    ]
    if logging:
        statements.append(_allow("DeliverLogs", LOG_DELIVERY_ACTIONS, ["*"]))
    if xray:
        statements.append(_allow("Traces", XRAY_ACTIONS, ["*"]))
    return _policy(*statements)


def submit_policy(names: Names) -> Policy:
    """The submit Lambda (the API's job route): start executions of exactly this deployment's
    state machine, and write its own logs."""
    return _policy(
        _allow("StartJobs", ["states:StartExecution"], [names.state_machine_arn]),
        _logs(names, SUBMIT),
    )


def role_policies(
    names: Names, prefix: str, *, logging: bool = True, xray: bool = False, shards: bool = False
) -> dict[str, tuple[str, Policy]]:
    """Role purpose -> (trusted service, inline policy) for every role of the deployment."""
    return {
        "plan": (LAMBDA_SERVICE, plan_policy(names)),
        "download": (LAMBDA_SERVICE, download_policy(names, prefix, shards=shards)),
        "consolidate": (LAMBDA_SERVICE, consolidate_policy(names)),
        SUBMIT: (LAMBDA_SERVICE, submit_policy(names)),
        "statemachine": (
            STATES_SERVICE,
            state_machine_policy(names, logging=logging, xray=xray),
        ),
    }


def bucket_policy(names: Names) -> Policy:
    """The image bucket's policy: refuse every request that does not use TLS."""
    return _policy(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [names.bucket_arn, f"{names.bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
