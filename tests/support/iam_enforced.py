"""A moto server that enforces IAM: ``python tests/support/iam_enforced.py PORTFILE``.

moto checks every request's signature and IAM permissions once it has served
``INITIAL_NO_AUTH_ACTION_COUNT`` requests (set to `FREE_REQUESTS` here: the test spends
them on making an administrator and its access key). What this file adds, so that the
check is the one AWS makes:

- DynamoDB and SNS requests are authorized against the table / topic they name (moto asks
  about resource "*", which no least-privilege policy allows);
- Step Functions' own task calls (Lambda invoke, the Map's S3 reads and writes, SNS
  publish) are signed with credentials of the state machine's role, as Step Functions
  assumes it (moto's interpreter signs with a key no IAM user has);
- the Lambda handlers run (tests/aws/lambda_invoke.py, from the deployed zip, in this
  process) under credentials of their own execution role (tests/support/aws_roles.py).

So a policy missing a permission a handler or the state machine needs fails the run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

FREE_REQUESTS = 3  # CreateUser, PutUserPolicy, CreateAccessKey
UNCHECKED_SIGNATURES = ("lambda", "apigateway")
# moto names a request's action after its API operation (from 5.2.6 for S3 too); IAM's name
# for these differs, and a policy names the IAM action ("Required permissions for Amazon S3
# API operations" and the Lambda API reference). Without this a least-privilege policy is
# refused what AWS grants it, e.g. ListObjectsV2 under s3:ListBucket.
IAM_ACTIONS = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:GetObjectAttributes": "s3:GetObject",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:UploadPartCopy": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:CopyObject": "s3:PutObject",
    "s3:ListParts": "s3:ListMultipartUploadParts",
    "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "s3:DeleteObjects": "s3:DeleteObject",
}

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "aws"))
sys.path.insert(0, str(TESTS))


def _dynamodb_resource(self: Any) -> str:
    body = getattr(self, "params", None) or {}
    tables = list(body.get("RequestItems", {})) or [body.get("TableName", "")]
    if not tables[0]:
        return "*"
    return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{tables[0]}"


def _lambda_resource(self: Any) -> str:
    from urllib.parse import unquote

    path = unquote(str(getattr(self, "path", "") or ""))
    if "/functions/" not in path:
        return "*"
    name = path.split("/functions/", 1)[1].split("/", 1)[0].split("?", 1)[0]
    if name.startswith("arn:"):
        return name
    return f"arn:aws:lambda:{self.region}:{self.current_account}:function:{name}"


def _sns_resource(self: Any) -> str:
    return str(self._get_param("TopicArn") or self._get_param("TargetArn") or "*")


def _state_machine_role(region: str) -> str:
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for backend_dict in (stepfunctions_parser_backends, stepfunctions_backends):
        for backends in backend_dict.values():
            for machine in backends[region].state_machines:
                return str(machine.roleArn)
    raise RuntimeError("no state machine: nothing to take a role from")


def _role_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto's `boto_client_for`, signed with the state machine role's credentials."""
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.utils.boto_client import moto_server_port

    from support.aws_roles import role_credentials

    role = _state_machine_role(region)
    credentials = role_credentials(role.split(":")[4], region, role)
    return boto3.client(
        service_name=service,
        region_name=region,
        endpoint_url=f"http://localhost:{moto_server_port()}",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )


# The interpreter's modules that make Step Functions' own calls (each imported the helper).
TASK_MODULES = [
    "state_map.result_writer.resource_eval.resource_eval_s3",
    "state_map.item_reader.eval.resource_eval_s3",
    "state_task.lambda_eval_utils",
    "state_task.service.state_task_service_sns",
]


def install() -> None:
    """The patches above, in this (server) process."""
    import importlib

    from moto.awslambda.responses import LambdaResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.access_control import IAMRequest, IAMRequestBase
    from moto.sns.responses import SNSResponse

    DynamoHandler._determine_resource = _dynamodb_resource  # type: ignore[attr-defined]
    LambdaResponse._determine_resource = _lambda_resource  # type: ignore[attr-defined]
    checked = IAMRequest.check_signature

    def check_signature(self: Any) -> None:
        # moto recomputes the signatures of Lambda's and API Gateway's REST calls wrongly in
        # server mode (each fails SignatureDoesNotMatch); for those the key must still be
        # known, and the call is still authorized against the caller's policies.
        scope = self._headers.get("Authorization", "")
        if not any(f"/{service}/aws4_request" in scope for service in UNCHECKED_SIGNATURES):
            checked(self)

    IAMRequest.check_signature = check_signature  # type: ignore[method-assign]
    initialized = IAMRequestBase.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        initialized(self, *args, **kwargs)
        self._action = IAM_ACTIONS.get(self._action, self._action)

    # on the base: IAMRequest and S3IAMRequest both take it
    IAMRequestBase.__init__ = init  # type: ignore[method-assign]
    SNSResponse._determine_resource = _sns_resource  # type: ignore[attr-defined]
    base = "moto.stepfunctions.parser.asl.component.state.exec."
    for name in TASK_MODULES:
        module = importlib.import_module(base + name)
        assert hasattr(module, "boto_client_for"), name
        module.boto_client_for = _role_client  # type: ignore[attr-defined]


def main() -> None:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(FREE_REQUESTS)
    from moto import settings
    from moto_server import serve

    settings.INITIAL_NO_AUTH_ACTION_COUNT = FREE_REQUESTS
    serve(Path(sys.argv[1]), started=install)


if __name__ == "__main__":
    main()
