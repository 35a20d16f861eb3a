"""The one module that imports boto3: typed AWS clients and AWS errors as imgflow errors.

Everything else in imgflow (the deployer, the job driver, the Lambda adapters) gets its
clients from here and calls methods on them; nothing else imports boto3 or botocore.

Usage::

    from imgflow.aws.client import AwsError, NotFoundError, aws_errors, connect

    aws = connect(profile=None, region="us-east-1", endpoint_url=None)  # or from_config(cfg)
    s3 = aws.s3()                       # mypy_boto3_s3.S3Client, cached per service
    with aws_errors("s3:HeadBucket"):   # ClientError -> AwsError / NotFoundError
        s3.head_bucket(Bucket="b")
    aws.region, aws.endpoint_url, aws.account_id()
    aws.on_call(hook)                   # hook(operation: str, params: dict) before every call

API (kept stable):

- ``connect(profile, region, endpoint_url) -> Aws``: a session with botocore's standard
  retry mode. An explicit value wins; with ``region=None`` the region is AWS_REGION, then
  AWS_DEFAULT_REGION, then the profile's (the AWS SDKs' and CLI v2's order: botocore alone
  reads only AWS_DEFAULT_REGION); AWS_PROFILE and AWS_ENDPOINT_URL are left to botocore.
- ``from_config(cfg, *, profile=None, region=None) -> Aws``: flags > ``aws.*`` config.
  ``aws.endpoint_url`` in config wins over AWS_ENDPOINT_URL.
- ``Aws.presigned_get(bucket, key, seconds) -> str``: a SigV4-presigned GET URL.
- ``Aws.s3() .dynamodb() .sns() .sqs() .iam() .lambda_() .stepfunctions() .apigatewayv2()
  .sts() .logs()``: typed clients.
- ``Aws.on_call(hook)``: ``hook(operation_name, params)`` runs before every API call of
  every client of this session (e.g. ``"CreateBucket"``); raise from it to inject a failure.
- ``AwsError(operation, code, message, call)`` (a BackendError; ``call`` is botocore's
  operation name, e.g. "CreateBucket") and its subclass ``NotFoundError``;
  ``aws_errors(operation)`` is a context manager that raises them from botocore errors;
  ``error_code(exc) -> (code, message)`` for a botocore exception; ``is_not_found(code)``.
- ``optional(lambda: client.get_x(...)) -> result | None``: None when AWS says "not found".
- ``Aws.signed_headers(method, url, body, headers, service)``: SigV4-signed headers for a
  plain HTTP request (the HTTP API with ``api.auth: iam``).
- ``lambda_session() -> Aws``: inside a Lambda function, one session (and its clients)
  kept at module level across invocations, made on first use; a new one only when the
  environment's region, endpoint or credentials change (they do not within a sandbox).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.exceptions

from imgflow.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from mypy_boto3_apigatewayv2 import ApiGatewayV2Client
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

    from imgflow.config import Config

__all__ = [
    "Aws",
    "AwsError",
    "CallHook",
    "NotFoundError",
    "aws_errors",
    "connect",
    "env_region",
    "error_code",
    "from_config",
    "is_not_found",
    "lambda_session",
    "optional",
]

CallHook = Callable[[str, dict[str, Any]], None]
T = TypeVar("T")

MAX_ATTEMPTS = 8

# Error codes AWS services use for "the thing you named does not exist".
NOT_FOUND_CODES = frozenset(
    {
        "404",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchBucketPolicy",
        "NoSuchLifecycleConfiguration",
        "NoSuchPublicAccessBlockConfiguration",
        "NoSuchTagSet",
        "ServerSideEncryptionConfigurationNotFoundError",
        "NoSuchEntity",
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "StateMachineDoesNotExist",
        "ExecutionDoesNotExist",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    }
)


class AwsError(BackendError):
    """An AWS call failed: names the operation, the AWS error code and AWS's message."""

    def __init__(self, operation: str, code: str, message: str, call: str = "") -> None:
        self.operation = operation
        self.code = code
        self.aws_message = message
        self.call = call or operation
        super().__init__(f"{operation} failed: {code}: {message}")


class NotFoundError(AwsError):
    """The resource an AWS call named does not exist."""


def is_not_found(code: str) -> bool:
    """True when `code` is one of AWS's "does not exist" error codes."""
    return code in NOT_FOUND_CODES


def error_code(exc: BaseException) -> tuple[str, str]:
    """(AWS error code, message) of a botocore exception; a local failure gets a short code."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "Unknown")
        message = str(err.get("Message") or exc)
        return code, message
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "NoCredentials", "no AWS credentials found (set AWS_PROFILE or use --profile)"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return "EndpointConnectionError", str(exc)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return type(exc).__name__, str(exc)
    return type(exc).__name__, str(exc)


def translate(operation: str, exc: BaseException) -> AwsError:
    """The imgflow error for a botocore exception raised by `operation`."""
    code, message = error_code(exc)
    cls = NotFoundError if is_not_found(code) else AwsError
    call = getattr(exc, "operation_name", "") or ""
    return cls(operation, code, message, call)


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Raise AwsError / NotFoundError instead of botocore's exceptions inside the block."""
    try:
        yield
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(operation, exc) from None


def optional(call: Callable[[], T], operation: str = "") -> T | None:
    """`call()`'s result, or None when AWS answers "not found"; other errors as AwsError."""
    try:
        with aws_errors(operation or "aws"):
            return call()
    except NotFoundError:
        return None


class Aws:
    """One AWS session: a region, an optional endpoint, and typed clients made on demand."""

    def __init__(self, session: boto3.Session, endpoint_url: str | None) -> None:
        region = session.region_name
        if not region:
            raise ConfigError("aws.region: no AWS region set (use --region, AWS_REGION or config)")
        self._session = session
        self.region: str = region
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._hooks: list[CallHook] = []
        self._account: str | None = None
        self._config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            user_agent_extra="imgflow",
        )

    @property
    def profile(self) -> str | None:
        """The named profile in use, if any."""
        name = self._session.profile_name
        return None if name == "default" else name

    def on_call(self, hook: CallHook) -> None:
        """Run `hook(operation_name, params)` before every call of every client."""
        self._hooks.append(hook)

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        for hook in self._hooks:
            hook(str(model.name), params)

    def _client(self, service: str) -> Any:
        with self._lock:  # a Lambda's threads share one session
            if service not in self._clients:
                client = self._session.client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
                client.meta.events.register("before-call.*.*", self._before_call)
                self._clients[service] = client
            return self._clients[service]

    def s3(self) -> S3Client:
        """The S3 client."""
        client: S3Client = self._client("s3")
        return client

    def presigned_get(self, bucket: str, key: str, seconds: int) -> str:
        """A GET URL of one object, SigV4-presigned for `seconds` (botocore would sign with
        SigV2 in us-east-1, which AWS no longer accepts everywhere)."""
        if "s3v4" not in self._clients:
            config = self._config.merge(botocore.config.Config(signature_version="s3v4"))
            self._clients["s3v4"] = self._session.client(
                "s3", endpoint_url=self.endpoint_url, config=config
            )
        url: str = self._clients["s3v4"].generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds
        )
        return url

    def dynamodb(self) -> DynamoDBClient:
        """The DynamoDB client."""
        client: DynamoDBClient = self._client("dynamodb")
        return client

    def sns(self) -> SNSClient:
        """The SNS client."""
        client: SNSClient = self._client("sns")
        return client

    def sqs(self) -> SQSClient:
        """The SQS client."""
        client: SQSClient = self._client("sqs")
        return client

    def iam(self) -> IAMClient:
        """The IAM client."""
        client: IAMClient = self._client("iam")
        return client

    def lambda_(self) -> LambdaClient:
        """The Lambda client."""
        client: LambdaClient = self._client("lambda")
        return client

    def stepfunctions(self) -> SFNClient:
        """The Step Functions client."""
        client: SFNClient = self._client("stepfunctions")
        return client

    def apigatewayv2(self) -> ApiGatewayV2Client:
        """The API Gateway v2 (HTTP APIs) client."""
        client: ApiGatewayV2Client = self._client("apigatewayv2")
        return client

    def sts(self) -> STSClient:
        """The STS client."""
        client: STSClient = self._client("sts")
        return client

    def logs(self) -> CloudWatchLogsClient:
        """The CloudWatch Logs client."""
        client: CloudWatchLogsClient = self._client("logs")
        return client

    def account_id(self) -> str:
        """The caller's AWS account id (one STS call, then cached)."""
        if self._account is None:
            with aws_errors("sts:GetCallerIdentity"):
                self._account = self.sts().get_caller_identity()["Account"]
        return self._account

    def partition(self) -> str:
        """The ARN partition of the region (aws, aws-cn, aws-us-gov)."""
        return self._session.get_partition_for_region(self.region)

    def signed_headers(
        self, method: str, url: str, body: bytes, headers: dict[str, str], service: str
    ) -> dict[str, str]:
        """`headers` plus a SigV4 signature (botocore's signer) for a request to `url`."""
        credentials = self._session.get_credentials()
        if credentials is None:
            raise ConfigError("aws: no AWS credentials found to sign the request")
        request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
        signer = botocore.auth.SigV4Auth(credentials.get_frozen_credentials(), service, self.region)
        signer.add_auth(request)
        return {k: str(v) for k, v in request.headers.items()}


def env_region(env: Mapping[str, str] | None = None) -> str | None:
    """AWS_REGION, else AWS_DEFAULT_REGION, else None (the profile's region, if any)."""
    env = os.environ if env is None else env
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def connect(
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> Aws:
    """A session; None leaves profile/endpoint to botocore, the region to `env_region`."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region or env_region())
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(f"aws.profile: AWS profile {profile!r} not found") from None
    return Aws(session, endpoint_url)


def from_config(cfg: Config, *, profile: str | None = None, region: str | None = None) -> Aws:
    """A session for `cfg`'s aws section; flags (profile, region) win over the config."""
    return connect(
        profile=profile or cfg.aws.profile,
        region=region or cfg.aws.region,
        endpoint_url=cfg.aws.endpoint_url,
    )


_LAMBDA_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")
_lambda_sessions: dict[tuple[str | None, ...], Aws] = {}
_lambda_lock = threading.Lock()


def lambda_session() -> Aws:
    """The session a Lambda handler uses, reused across invocations of the sandbox.

    A boto3 session and its clients cost tens of milliseconds to make; Lambda keeps the
    module between invocations, so they are made once, on first use. Keyed by the
    environment that chose them, so a changed region, endpoint or key gets its own.
    """
    key = tuple(os.environ.get(name) for name in _LAMBDA_ENV)
    with _lambda_lock:
        session = _lambda_sessions.get(key)
        if session is None:
            session = _lambda_sessions[key] = connect()
        return session
