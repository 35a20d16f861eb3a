"""A stand-in for a deployed API Gateway HTTP API, as strict as AWS on what imgflow uses.

moto records HTTP APIs but does not serve them. `HttpApiDouble` reads what deploy made in
moto (the API's endpoint, its routes with their authorization type, each route's
integration: the submit Lambda's, or an older deployment's StartExecution one) and serves
exactly that:

- at the API's own URL, unchanged (``https://<id>.execute-api.<region>.amazonaws.com``):
  the double is an HTTPS proxy (``HTTPS_PROXY``) that accepts CONNECT to the API's host
  only and answers over TLS with a certificate for that host from a test CA (trustme;
  ``SSL_CERT_FILE`` names the CA), so the client's TLS and URL are the real ones;
- a request whose method and path match no route key: 404 ``{"message":"Not Found"}``;
- a route with AWS_IAM: the SigV4 signature is recomputed with botocore's signer from the
  known test credentials, for the API's region and service ``execute-api``, and compared;
  a missing, mis-scoped or wrong signature is a 403 as API Gateway answers it;
- then the integration, either of:
  - StepFunctions-StartExecution (the former integration): StartExecution of its state
    machine with the request body as input, answered with the execution ARN;
  - AWS_PROXY to a Lambda function (payload format 2.0): API Gateway invokes the function
    only under a resource-based permission for apigateway.amazonaws.com whose SourceArn
    matches the request's ``arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>
    <path>``; without one the real service answers 500 ``{"message":"Internal Server
    Error"}`` (and logs the permission error), and so does this double. With permission it
    sends the payload 2.0 event (version, routeKey, rawPath, headers, requestContext, body,
    isBase64Encoded) and maps the function's proxy answer (statusCode, headers, body,
    isBase64Encoded) to the HTTP reply; a function error is a 500.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hmac
import json
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trustme
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from imgflow.aws.client import Aws
from support.threaded import ThreadedServer

SERVICE = "execute-api"
AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Route:
    """One deployed route: method, path, authorization and the state machine it starts."""

    method: str
    path: str
    authorization: str
    state_machine_arn: str
    credentials_arn: str = ""
    function_arn: str = ""  # an AWS_PROXY Lambda integration's function (payload 2.0)


@dataclass
class Seen:
    """What the double received."""

    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    bodies: list[Any] = field(default_factory=list)  # bodies that started an execution


def deployed_routes(aws: Aws, api_id: str) -> list[Route]:
    """The routes of API `api_id` as moto holds them."""
    client = aws.apigatewayv2()
    routes = []
    for item in client.get_routes(ApiId=api_id)["Items"]:
        method, path = item["RouteKey"].split(" ", 1)
        integration_id = item["Target"].removeprefix("integrations/")
        integration = client.get_integration(ApiId=api_id, IntegrationId=integration_id)
        auth = item.get("AuthorizationType", "NONE")
        if not integration.get("IntegrationSubtype"):
            assert integration["IntegrationType"] == "AWS_PROXY"
            assert integration["PayloadFormatVersion"] == "2.0"
            function = integration["IntegrationUri"]
            routes.append(Route(method, path, auth, "", function_arn=function))
            continue
        assert integration["IntegrationSubtype"] == "StepFunctions-StartExecution"
        assert integration["RequestParameters"]["Input"] == "$request.body"
        arn = integration["RequestParameters"]["StateMachineArn"]
        routes.append(Route(method, path, auth, arn, integration.get("CredentialsArn", "")))
    return routes


API_GATEWAY = "apigateway.amazonaws.com"


def _condition_holds(operator: str, values: dict[str, Any]) -> bool:
    """Whether a trust policy condition holds for API Gateway's AssumeRole, which carries
    no aws:SourceAccount or aws:SourceArn key: on a missing key only ...IfExists operators
    and ``Null: true`` hold."""
    if operator.endswith("IfExists"):
        return True
    if operator == "Null":
        return all(str(v).lower() == "true" for v in values.values())
    return not values


def api_gateway_may_assume(policy: dict[str, Any]) -> bool:
    """Whether API Gateway may assume a role with this trust policy, for an integration."""
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") != "Allow" or API_GATEWAY not in services:
            continue
        if "sts:AssumeRole" not in actions:
            continue
        conditions = statement.get("Condition", {})
        if all(_condition_holds(op, values) for op, values in conditions.items()):
            return True
    return False


def api_gateway_may_invoke(policy: dict[str, Any], source_arn: str) -> bool:
    """Whether a function's resource policy lets API Gateway invoke it for `source_arn`
    (an Allow for apigateway.amazonaws.com, lambda:InvokeFunction, and an ArnLike
    AWS:SourceArn condition matching the request, when there is one)."""
    for statement in policy.get("Statement", []):
        principal = statement.get("Principal", {})
        service = principal.get("Service") if isinstance(principal, dict) else principal
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") != "Allow" or service != API_GATEWAY:
            continue
        if "lambda:InvokeFunction" not in actions:
            continue
        pattern = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn", "*")
        if fnmatch.fnmatchcase(source_arn, pattern):
            return True
    return False


def signature_problem(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
) -> str | None:
    """Why API Gateway would refuse this request's SigV4 signature, or None if it is right."""
    authorization = headers.get("authorization", "")
    if not authorization:
        return "Missing Authentication Token"
    match = AUTH.match(authorization)
    if match is None:
        return "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'"
    if match["key"] != credentials.access_key:
        return "The security token included in the request is invalid."
    if (match["region"], match["service"]) != (region, SERVICE):
        return (
            f"Credential should be scoped to a valid region and service: "
            f"{match['region']}/{match['service']}, expected {region}/{SERVICE}"
        )
    stamp = headers.get("x-amz-date", "")
    if not stamp.startswith(match["date"]):
        return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date"
    if credentials.token and headers.get("x-amz-security-token") != credentials.token:
        return "The security token included in the request is invalid."
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "'Host' and 'X-Amz-Date' must be signed"
    request = AWSRequest(method=method, url=url, data=body, headers={h: headers[h] for h in signed})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(credentials, SERVICE, region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, match["signature"]):
        return "The request signature we calculated does not match the signature you provided."
    return None


class HttpApiDouble:
    """The deployed HTTP API `api_id`, served at its own URL through an HTTPS proxy."""

    def __init__(self, aws: Aws, api_id: str, credentials: Credentials, workdir: Path) -> None:
        api = aws.apigatewayv2().get_api(ApiId=api_id)
        self.endpoint = api["ApiEndpoint"]
        self.host = str(urlsplit(self.endpoint).hostname)
        self.region = self.host.split(".")[2]  # <id>.execute-api.<region>.amazonaws.com
        self.api_id = api_id
        self.routes = deployed_routes(aws, api_id)
        self.seen = Seen()
        ca = trustme.CA()
        self.ca_file = workdir / "api-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(self.host).configure_cert(self._tls)
        self._aws, self._credentials = aws, credentials
        self._server = ThreadedServer(("127.0.0.1", 0), self._proxy_handler())
        self.proxy_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def redeployed(self) -> None:
        """Read the routes again (after a deploy changed them)."""
        self.routes = deployed_routes(self._aws, self.api_id)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """(status, JSON reply) for one request, as the deployed API would answer it."""
        route = next((r for r in self.routes if (r.method, r.path) == (method, path)), None)
        if route is None:
            return 404, {"message": "Not Found"}
        if route.authorization == "AWS_IAM":
            url = f"https://{self.host}{path}"
            problem = signature_problem(method, url, headers, body, self._credentials, self.region)
            if problem is not None:
                return 403, {"message": problem}
        if route.credentials_arn:
            role = self._aws.iam().get_role(RoleName=route.credentials_arn.rsplit("/", 1)[1])
            trust = role["Role"]["AssumeRolePolicyDocument"]
            trust = json.loads(trust) if isinstance(trust, str) else trust
            if not api_gateway_may_assume(trust):  # API Gateway answers 500 and logs it
                return 500, {"message": "Internal Server Error"}
        if route.function_arn:
            return self._invoke(route, headers, body)
        self.seen.bodies.append(json.loads(body))
        started = self._aws.stepfunctions().start_execution(
            stateMachineArn=route.state_machine_arn, name=str(uuid.uuid4()), input=body.decode()
        )
        return 200, {"executionArn": started["executionArn"], "startDate": 0}

    def _invoke(self, route: Route, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The Lambda proxy integration (payload format 2.0), as API Gateway runs it."""
        lam = self._aws.lambda_()
        account = route.function_arn.split(":")[4]
        source = f"arn:aws:execute-api:{self.region}:{account}:{self.api_id}/$default/"
        source += f"{route.method}{route.path}"
        try:
            policy = json.loads(lam.get_policy(FunctionName=route.function_arn)["Policy"])
        except lam.exceptions.ResourceNotFoundException:
            policy = {}
        if not api_gateway_may_invoke(policy, source):
            return 500, {"message": "Internal Server Error"}
        try:
            text, encoded = body.decode(), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        event = {
            "version": "2.0",
            "routeKey": f"{route.method} {route.path}",
            "rawPath": route.path,
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": account,
                "apiId": self.api_id,
                "http": {"method": route.method, "path": route.path},
                "routeKey": f"{route.method} {route.path}",
                "stage": "$default",
            },
            "body": text,
            "isBase64Encoded": encoded,
        }
        answer = lam.invoke(FunctionName=route.function_arn, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError") or not isinstance(payload, dict):
            return 500, {"message": "Internal Server Error"}
        if "statusCode" not in payload:  # 2.0 infers a 200 with the answer as JSON body
            return 200, payload
        reply = payload.get("body") or ""
        if payload.get("isBase64Encoded"):
            reply = base64.b64decode(reply).decode()
        status = int(payload["statusCode"])
        if status == 200:
            self.seen.bodies.append(json.loads(body))
        return status, json.loads(reply) if reply else None

    def _proxy_handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Api(BaseHTTPRequestHandler):
            """HTTP inside the TLS tunnel: the API itself."""

            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reply = double.answer(self.command, self.path, headers, body)
                double.seen.requests.append((self.command, self.path, status))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, *args: object) -> None:
                pass

        class Proxy(BaseHTTPRequestHandler):
            """The HTTPS proxy: CONNECT to the API's host only."""

            protocol_version = "HTTP/1.1"

            def do_CONNECT(self) -> None:
                host, _, port = self.path.rpartition(":")
                if (host, port) != (double.host, "443"):
                    self.send_error(502, "only the API's host is reachable here")
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                with contextlib.suppress(ssl.SSLError, OSError):
                    tls = double._tls.wrap_socket(self.connection, server_side=True)
                    Api(tls, self.client_address, self.server)
                    with contextlib.suppress(OSError):
                        tls.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Proxy

    @contextlib.contextmanager
    def reachable(self, monkeypatch: Any) -> Iterator[HttpApiDouble]:
        """Route the process's HTTPS through the double and trust its CA."""
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", self.proxy_url)
        monkeypatch.setenv("SSL_CERT_FILE", str(self.ca_file))
        yield self
