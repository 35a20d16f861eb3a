"""The API's job route is the submit Lambda: 413 over Step Functions' execution input limit
(with how to send a manifest reference instead), 400 for a body that is not a JSON object,
else the execution it started, answered as the StartExecution integration answered.

The API is the strict stand-in (support/http_api.py): it invokes the Lambda with a payload
2.0 event only under the function's invoke permission for API Gateway, as the service does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from lambda_invoke import patched
from pipeline_env import Deployed, deploy_pipeline, pipeline_config
from support.aws_moto import wait_for_execution
from support.http_api import HttpApiDouble
from test_deploy_resilience import fail_on
from test_former_api_role import make_former_role
from test_via_api import TEST_CREDENTIALS, signed

from imgflow.aws.client import Aws
from imgflow.aws.deploy import DeploymentOutputs, DeployResult
from imgflow.aws.deploy.api import PERMISSION_ID
from imgflow.aws.job_api import uploaded_body
from imgflow.aws.runtime.submit import MAX_EXECUTION_INPUT, submit
from imgflow.config import Config
from imgflow.demo.server import StaticServer
from imgflow.errors import DeployError


@pytest.fixture
def api(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Deployed, HttpApiDouble]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", str(TEST_CREDENTIALS.token))
    with patched():
        deployed = deploy_pipeline(aws, pipeline_config(tmp_path / "deployed"))
        api_id = str(deployed.outputs.api_id)
        double = HttpApiDouble(aws, api_id, TEST_CREDENTIALS, tmp_path)
        try:
            with double.reachable(monkeypatch):
                yield deployed, double
        finally:
            double.close()


def post(url: str, data: bytes) -> httpx.Response:
    return httpx.post(url, content=data, headers=signed(url, data, "us-east-1"), timeout=60)


def executions(aws: Aws, deployed: Deployed) -> list[str]:
    sfn = aws.stepfunctions()
    found = sfn.list_executions(stateMachineArn=deployed.outputs.state_machine_arn)
    return [e["executionArn"] for e in found["executions"]]


def test_a_body_over_the_execution_input_limit_is_a_413_naming_the_way_round(
    aws: Aws, api: tuple[Deployed, HttpApiDouble]
) -> None:
    deployed, double = api
    url = str(deployed.outputs.api_url)
    body = {"baseUrl": "https://h", "resourcePaths": [], "lambdaConcur": 2, "pad": ""}
    data = json.dumps(body, separators=(",", ":")).encode()
    body["pad"] = "x" * (MAX_EXECUTION_INPUT + 1 - len(data))
    data = json.dumps(body, separators=(",", ":")).encode()
    assert len(data) == MAX_EXECUTION_INPUT + 1 == 262_145
    answer = post(url, data)
    assert answer.status_code == 413, answer.text
    message = answer.json()["message"]
    assert "262,144 bytes" in message and '{"manifest": "s3://' in message
    assert executions(aws, deployed) == [] and double.seen.bodies == []
    # Not JSON, or JSON but not an object: 400, one message, nothing started.
    for bad in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        refused = post(url, bad)
        assert refused.status_code == 400, refused.text
        assert refused.json() == {
            "message": "the request body must be a JSON object (a job or a manifest reference)"
        }
    assert executions(aws, deployed) == []
    # API Gateway invokes the function only under its resource policy: without it, 500.
    aws.lambda_().remove_permission(
        FunctionName=deployed.outputs.functions["submit"], StatementId=PERMISSION_ID
    )
    answer = post(url, b'{"baseUrl": "https://h", "resourcePaths": []}')
    assert answer.status_code == 500 and answer.json() == {"message": "Internal Server Error"}
    assert executions(aws, deployed) == [] and double.seen.bodies == []
    assert double.seen.requests[-1] == ("POST", "/jobs", 500)


def test_a_seed_body_and_a_manifest_reference_start_executions_as_before(
    aws: Aws, api: tuple[Deployed, HttpApiDouble], flags: StaticServer
) -> None:
    deployed, double = api
    url = str(deployed.outputs.api_url)
    body = {"baseUrl": flags.base_url, "resourcePaths": ["ad/ad.gif"], "lambdaConcur": 2}
    answer = post(url, json.dumps(body).encode())
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert set(reply) == {"executionArn", "startDate"} and isinstance(reply["startDate"], float)
    execution = wait_for_execution(aws, reply["executionArn"])
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["input"]) == body
    # A job uploaded by the CLI and sent as a reference starts as it is.
    big = {"baseUrl": flags.base_url, "resourcePaths": ["p/" + "s" * 200] * 1400}
    reference = uploaded_body(aws, deployed.bucket, big)
    assert set(reference) == {"manifest"}
    started = post(url, json.dumps(reference).encode())
    assert started.status_code == 200, started.text
    sfn = aws.stepfunctions()
    described = sfn.describe_execution(executionArn=started.json()["executionArn"])
    assert json.loads(described["input"]) == reference
    assert double.seen.bodies == [body, reference]


def test_the_handler_starts_a_body_at_the_limit_and_refuses_one_byte_more(aws: Aws) -> None:
    """The handler alone on moto's Step Functions (fast): the limit is exact, base64 bodies
    (as API Gateway sends binary ones) count decoded, and nothing over it is started."""
    sfn = aws.stepfunctions()
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    role = "arn:aws:iam::123456789012:role/submit-test"
    arn = sfn.create_state_machine(name="submit-test", definition=definition, roleArn=role)[
        "stateMachineArn"
    ]
    head = b'{"manifest":"'
    at_limit = head + b"x" * (MAX_EXECUTION_INPUT - len(head) - 2) + b'"}'
    assert len(at_limit) == MAX_EXECUTION_INPUT
    over = at_limit[:-2] + b'x"}'

    def event(data: bytes) -> dict[str, object]:
        return {"version": "2.0", "body": base64.b64encode(data).decode(), "isBase64Encoded": True}

    refused = submit(sfn, arn, event(over))
    assert (
        refused["statusCode"] == 413 and "262,144 bytes" in json.loads(refused["body"])["message"]
    )
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
    started = submit(sfn, arn, event(at_limit))
    assert started["statusCode"] == 200, started
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert json.loads(started["body"])["executionArn"] == execution["executionArn"]
    assert submit(sfn, arn, {"body": "not base64!", "isBase64Encoded": True})["statusCode"] == 400


def make_former_deployment(aws: Aws, deploy_cfg: Config, deployed: DeploymentOutputs) -> str:
    """Turn `deployed` into a deployment made when the route went straight to StartExecution
    (under the API's own role, `<name>-api`), without the invoke permission; the former
    integration's id."""
    api, api_id = aws.apigatewayv2(), str(deployed.api_id)
    role = make_former_role(aws, deploy_cfg.deployment, deployed.state_machine_arn)
    (route,) = api.get_routes(ApiId=api_id)["Items"]
    former = api.create_integration(
        ApiId=api_id,
        IntegrationType="AWS_PROXY",
        IntegrationSubtype="StepFunctions-StartExecution",
        PayloadFormatVersion="1.0",
        CredentialsArn=aws.iam().get_role(RoleName=role)["Role"]["Arn"],
        RequestParameters={"StateMachineArn": deployed.state_machine_arn, "Input": "$request.body"},
    )["IntegrationId"]
    api.update_route(ApiId=api_id, RouteId=route["RouteId"], Target=f"integrations/{former}")
    api.delete_integration(ApiId=api_id, IntegrationId=route["Target"].split("/")[1])
    aws.lambda_().remove_permission(
        FunctionName=deployed.functions["submit"], StatementId=PERMISSION_ID
    )
    return str(former)


def assert_routed_to_submit(aws: Aws, deployed: DeploymentOutputs) -> None:
    """One integration, the submit Lambda's, and the route leads to it."""
    api, api_id = aws.apigatewayv2(), str(deployed.api_id)
    (integration,) = api.get_integrations(ApiId=api_id)["Items"]
    assert integration["IntegrationUri"] == deployed.functions["submit"]
    (route,) = api.get_routes(ApiId=api_id)["Items"]
    assert route["Target"] == f"integrations/{integration['IntegrationId']}"


def test_a_deployment_with_the_former_integration_moves_to_the_submit_lambda(
    aws: Aws,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    deployed: DeploymentOutputs,
) -> None:
    """A deployment made when the route went straight to StartExecution: deploy points the
    route at the submit Lambda, deletes the old integration and the API's role, and a third
    deploy is a no-op; a lost invoke permission is put back."""
    make_former_deployment(aws, deploy_cfg, deployed)
    again = run_deploy(deploy_cfg)
    (step,) = [s for s in again.plan.steps if s.kind == "http api"]
    assert set(step.changes) == {"integration", "route", "former integration", "permission"}
    assert_routed_to_submit(aws, deployed)
    policy = aws.lambda_().get_policy(FunctionName=deployed.functions["submit"])["Policy"]
    assert len(json.loads(policy)["Statement"]) == 1
    roles = {r["RoleName"] for r in aws.iam().list_roles()["Roles"]}
    assert f"{deploy_cfg.deployment}-api" not in roles
    assert {s.action for s in run_deploy(deploy_cfg).plan.steps} == {"no change"}


def test_a_move_stopped_after_creating_the_lambda_integration_reuses_it(
    aws: Aws,
    run_deploy: Callable[..., DeployResult],
    deploy_cfg: Config,
    deployed: DeploymentOutputs,
) -> None:
    """A move to the submit Lambda interrupted between creating its integration and routing
    to it: the redeploy routes to that integration, not to a second one; interrupted again
    before deleting the former integration: the next deploy deletes it."""
    api, api_id = aws.apigatewayv2(), str(deployed.api_id)
    former = make_former_deployment(aws, deploy_cfg, deployed)
    fail_on(aws, "UpdateRoute")
    with pytest.raises(DeployError, match="UpdateRoute"):
        run_deploy(deploy_cfg)
    assert len(api.get_integrations(ApiId=api_id)["Items"]) == 2
    fail_on(aws, "DeleteIntegration")
    with pytest.raises(DeployError, match="DeleteIntegration"):
        run_deploy(deploy_cfg)
    ids = {i["IntegrationId"] for i in api.get_integrations(ApiId=api_id)["Items"]}
    assert len(ids) == 2 and former in ids
    run_deploy(deploy_cfg)
    assert_routed_to_submit(aws, deployed)
    assert {s.action for s in run_deploy(deploy_cfg).plan.steps} == {"no change"}
