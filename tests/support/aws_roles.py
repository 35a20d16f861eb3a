"""Each handler under its own role's credentials, and the AWS calls each role makes.

- `role_credentials(fn)`: what Lambda hands a function: temporary credentials of its
  execution role, made by moto's STS backend (as Lambda itself does, not through an API
  call the test could be refused). Cached per role, as a Lambda sandbox keeps them.
- `role_of(access_key)`: the role whose credentials carry that key ("statemachine" for the
  key moto's Step Functions interpreter signs with).
- `CallLog`: botocore event handlers, on every client made while installed, that record
  each call as (role, IAM action, resource ARN), for the policy test.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.handlers

# moto's Step Functions interpreter signs its task calls with this key (boto_client_for).
STATE_MACHINE_KEY = "ak"

_lock = threading.Lock()
_by_role: dict[str, dict[str, str]] = {}
_roles_by_key: dict[str, str] = {STATE_MACHINE_KEY: "statemachine"}


def role_credentials(account: str, region: str, role_arn: str) -> dict[str, str]:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN of `role_arn`."""
    from moto.sts.models import sts_backends

    with _lock:
        known = _by_role.get(role_arn)
        if known is None:
            backend = sts_backends[account]["aws"]
            assumed = backend.assume_role(
                region_name=region,
                role_session_name="lambda",
                role_arn=role_arn,
                policy="",
                duration=3600,
                external_id="",
            )
            known = {
                "AWS_ACCESS_KEY_ID": assumed.access_key_id,
                "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
                "AWS_SESSION_TOKEN": assumed.session_token,
            }
            _by_role[role_arn] = known
            _roles_by_key[assumed.access_key_id] = role_arn.rsplit("-", 1)[-1]
        return dict(known)


def forget_credentials() -> None:
    """Forget the cached role credentials (a new moto backend knows none of them)."""
    with _lock:
        _by_role.clear()


def role_of(access_key: str) -> str | None:
    """The purpose ("plan", "download", ...) of the role behind `access_key`, if known."""
    with _lock:
        return _roles_by_key.get(access_key)


MULTIPART_WRITES = {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def _s3(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    bucket = f"arn:aws:s3:::{params.get('Bucket', '')}"
    actions = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket"}
    if operation in MULTIPART_WRITES:  # authorized as s3:PutObject on the key
        return [("s3:PutObject", f"{bucket}/{params.get('Key', '')}")]
    if operation in actions:
        return [(actions[operation], bucket)]
    action = "s3:GetObject" if operation == "HeadObject" else f"s3:{operation}"
    return [(action, f"{bucket}/{params.get('Key', '')}")]


def _table_arn(region: str, account: str, table: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def iam_calls(
    service: str, operation: str, params: dict[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs an API call is authorized as."""
    if service == "s3":
        return _s3(operation, params)
    if service == "dynamodb":
        tables = list(params.get("RequestItems", {})) or [params.get("TableName", "")]
        return [(f"dynamodb:{operation}", _table_arn(region, account, t)) for t in tables]
    if service == "lambda" and operation == "Invoke":
        name = str(params.get("FunctionName", ""))
        arn = (
            name
            if name.startswith("arn:")
            else f"arn:aws:lambda:{region}:{account}:function:{name}"
        )
        return [("lambda:InvokeFunction", arn)]
    if service == "sns":
        return [(f"sns:{operation}", str(params.get("TopicArn", "")))]
    if service == "states":
        arn = params.get("stateMachineArn") or params.get("executionArn", "")
        return [(f"states:{operation}", str(arn))]
    return [(f"{service}:{operation}", "*")]


@dataclass
class CallLog:
    """Every call made while installed: (role or None, action, resource)."""

    account: str = "123456789012"
    calls: list[tuple[str | None, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["imgflow_params"] = json.loads(json.dumps(params, default=str))

    def _call(self, model: Any, request_signer: Any, context: dict[str, Any], **_: Any) -> None:
        credentials = getattr(request_signer, "_credentials", None)
        key = credentials.access_key if credentials is not None else ""
        service = model.service_model.endpoint_prefix
        region = str(getattr(request_signer, "_region_name", "") or "us-east-1")
        params = context.get("imgflow_params", {})
        pairs = iam_calls(service, model.name, params, region, self.account)
        with self._lock:
            self.calls.extend((role_of(key), action, arn) for action, arn in pairs)

    def by_role(self) -> dict[str, set[tuple[str, str]]]:
        """Role -> {(action, resource)} of the calls made under a known role."""
        found: dict[str, set[tuple[str, str]]] = {}
        with self._lock:
            for role, action, arn in self.calls:
                if role is not None:
                    found.setdefault(role, set()).add((action, arn))
        return found

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallLog]:
        """Record calls of every botocore session created inside the block."""
        added = [
            ("before-parameter-build", self._params),
            ("before-call", self._call),
        ]
        botocore.handlers.BUILTIN_HANDLERS.extend(added)
        try:
            yield self
        finally:
            for pair in added:
                botocore.handlers.BUILTIN_HANDLERS.remove(pair)
