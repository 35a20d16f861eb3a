"""IAM policy documents for one deployment, built from its names and ARNs (no API calls).

Least privilege: every statement names this deployment's own resources. The only wildcards
are trailing ones inside a named resource (objects under a prefix, a function's versions, a
state machine's executions, a function's log streams).
"""

from __future__ import annotations

from typing import Any

from infra.names import FUNCTION_ROLES, Names

Policy = dict[str, Any]
Statement = dict[str, Any]

JOBS_PREFIX = "jobs/"
LAMBDA_SERVICE = "lambda.amazonaws.com"
STATES_SERVICE = "states.amazonaws.com"
API_SERVICE = "apigateway.amazonaws.com"


def _policy(*statements: Statement) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def trust_policy(service: str) -> Policy:
    """The assume-role policy letting `service` (e.g. lambda.amazonaws.com) use a role."""
    return _policy(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )


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


def download_policy(names: Names, prefix: str) -> Policy:
    """The download Lambda: write images and results to its bucket, index rows to its table."""
    return _policy(
        _allow(
            "WriteObjects",
            ["s3:PutObject"],
            [f"{names.bucket_arn}/{prefix}*", _jobs_objects(names)],
        ),
        _allow(
            "Index",
            [
                "dynamodb:BatchWriteItem",
                "dynamodb:PutItem",
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
            ],
            [names.table_arn],
        ),
        _logs(names, "download"),
    )


def consolidate_policy(names: Names) -> Policy:
    """The consolidate Lambda: read, write and list job objects, read the index."""
    return _policy(
        _allow("JobObjects", ["s3:GetObject", "s3:PutObject"], [_jobs_objects(names)]),
        _allow(
            "ListJobs",
            ["s3:ListBucket"],
            [names.bucket_arn],
            Condition={"StringLike": {"s3:prefix": [f"{JOBS_PREFIX}*"]}},
        ),
        _allow("ReadIndex", ["dynamodb:GetItem", "dynamodb:BatchGetItem"], [names.table_arn]),
        _logs(names, "consolidate"),
    )


def state_machine_policy(names: Names) -> Policy:
    """The state machine: invoke its Lambdas, publish to its topic, job objects, its Map runs."""
    functions = [names.function_arn(role) for role in FUNCTION_ROLES]
    return _policy(
        _allow(
            "InvokeFunctions",
            ["lambda:InvokeFunction"],
            functions + [f"{arn}:*" for arn in functions],
        ),
        _allow("PublishFailures", ["sns:Publish"], [names.topic_arn]),
        _allow("JobObjects", ["s3:GetObject", "s3:PutObject"], [_jobs_objects(names)]),
        _allow("ListBucket", ["s3:ListBucket"], [names.bucket_arn]),
        _allow("StartMapRuns", ["states:StartExecution"], [names.state_machine_arn]),
        _allow(
            "ManageMapRuns",
            ["states:DescribeExecution", "states:StopExecution"],
            [names.executions_arn],
        ),
    )


def api_policy(names: Names) -> Policy:
    """The HTTP API: start executions of exactly this deployment's state machine."""
    return _policy(_allow("StartJobs", ["states:StartExecution"], [names.state_machine_arn]))


def role_policies(names: Names, prefix: str) -> dict[str, tuple[str, Policy]]:
    """Role purpose -> (trusted service, inline policy) for every role of the deployment."""
    return {
        "plan": (LAMBDA_SERVICE, plan_policy(names)),
        "download": (LAMBDA_SERVICE, download_policy(names, prefix)),
        "consolidate": (LAMBDA_SERVICE, consolidate_policy(names)),
        "statemachine": (STATES_SERVICE, state_machine_policy(names)),
        "api": (API_SERVICE, api_policy(names)),
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
