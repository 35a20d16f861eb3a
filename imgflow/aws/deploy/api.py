"""Plan the HTTP API: one route whose Lambda (submit, payload format 2.0) starts executions.

The route's integration is AWS_PROXY to the submit function (imgflow/aws/runtime/submit.py),
which answers 413 for a body over Step Functions' execution input limit and 400 for one that
is not a JSON object. API Gateway invokes the function under a resource-based permission
(lambda:AddPermission for apigateway.amazonaws.com, SourceArn: this API's route), so no
credentials role is involved. A deployment made with the former StepFunctions-StartExecution
integration gets the Lambda integration (the one a deploy stopped halfway left, else a new
one), its route moved to it, then the former integration deleted (any the API still has:
a deploy stopped after moving the route left it); deploy then deletes the former
integration's role (roles.py former_role_steps).
"""

from __future__ import annotations

import json
from typing import Any

from imgflow.aws.client import optional
from imgflow.aws.deploy.context import Context
from imgflow.aws.deploy.plan import Step, step
from infra.iam import API_SERVICE
from infra.names import SUBMIT, TAG_KEY

API = "http api"
STAGE = "$default"
SUBTYPE = "StepFunctions-StartExecution"  # the former integration (replaced on deploy)
PERMISSION_ID = "imgflow-api-invoke"


def find_api(ctx: Context) -> dict[str, Any] | None:
    """The API with our name and tag (or the one the state file names), if any."""
    api = ctx.aws.apigatewayv2()
    known = ctx.state.resources.get("api", {}).get("id")
    token: str | None = None
    while True:
        page = api.get_apis(NextToken=token) if token else api.get_apis()
        for item in page.get("Items", []):
            ours = item.get("Tags", {}).get(TAG_KEY) == ctx.cfg.deployment
            if item["ApiId"] == known or (ours and item["Name"] == ctx.names.api):
                return dict(item)
        token = page.get("NextToken")
        if not token:
            return None


def route_key(ctx: Context) -> str:
    """`POST <api.route>`."""
    return f"POST {ctx.cfg.api.route}"


def auth_type(ctx: Context) -> str:
    """AWS_IAM unless config says `api.auth: none`."""
    return "NONE" if ctx.cfg.api.auth == "none" else "AWS_IAM"


def desired_integration(ctx: Context) -> dict[str, Any]:
    """The integration that hands the request to the submit Lambda (payload format 2.0)."""
    return {
        "IntegrationType": "AWS_PROXY",
        "IntegrationUri": ctx.names.function_arn(SUBMIT),
        "PayloadFormatVersion": "2.0",
    }


def _integration_changes(ctx: Context, integration: dict[str, Any] | None) -> list[str]:
    if integration is None:
        return ["integration"]
    wanted = desired_integration(ctx)
    differs = any(integration.get(k) != v for k, v in wanted.items())
    return ["integration"] if differs else []


def _integrations(
    ctx: Context, api_id: str, target: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """The API's submit integration (the one route `target` leads to, else one no route
    leads to: a deploy that stopped between creating it and routing to it left it, reused
    rather than a second one added) and the ids of its former StartExecution integrations."""
    items = [dict(i) for i in ctx.aws.apigatewayv2().get_integrations(ApiId=api_id)["Items"]]
    uri = ctx.names.function_arn(SUBMIT)
    routed = next((i for i in items if f"integrations/{i['IntegrationId']}" == target), None)
    if routed is None or routed.get("IntegrationSubtype"):
        routed = next((i for i in items if i.get("IntegrationUri") == uri), None)
    formers = [str(i["IntegrationId"]) for i in items if i.get("IntegrationSubtype") == SUBTYPE]
    return routed, formers


def invoke_source_arn(ctx: Context, api_id: str) -> str:
    """The SourceArn API Gateway invokes the submit function with: this API's job route."""
    names = ctx.names
    where = f"{names.partition}:execute-api:{names.region}:{names.account}"
    return f"arn:{where}:{api_id}/*/POST{ctx.cfg.api.route}"


def permitted_source(ctx: Context) -> str | None:
    """The SourceArn of our invoke permission on the submit function, if it has one."""
    lam = ctx.aws.lambda_()
    got = optional(lambda: lam.get_policy(FunctionName=ctx.names.function(SUBMIT)))
    statements = json.loads(got["Policy"]).get("Statement", []) if got else []
    ours = next((s for s in statements if s.get("Sid") == PERMISSION_ID), None)
    source = (ours or {}).get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
    return str(source) if source else None


def _permit(ctx: Context, api_id: str, replace: bool) -> None:
    """Let API Gateway invoke the submit function for this API's route (and nothing else)."""
    lam, name = ctx.aws.lambda_(), ctx.names.function(SUBMIT)
    if replace:
        lam.remove_permission(FunctionName=name, StatementId=PERMISSION_ID)
    lam.add_permission(
        FunctionName=name,
        StatementId=PERMISSION_ID,
        Action="lambda:InvokeFunction",
        Principal=API_SERVICE,
        SourceArn=invoke_source_arn(ctx, api_id),
    )


def api_step(ctx: Context) -> Step:
    """Create or update the API, its integration, route and auto-deployed stage."""
    api, name = ctx.aws.apigatewayv2(), ctx.names.api
    changes: list[str] = []
    integration: dict[str, Any] | None = None
    formers: list[str] = []
    route: dict[str, Any] | None = None
    permitted: str | None = None
    with ctx.reading(API, name):
        found = find_api(ctx)
        if found is not None:
            api_id = found["ApiId"]
            routes = api.get_routes(ApiId=api_id).get("Items", [])
            route = next((dict(r) for r in routes if r["RouteKey"] == route_key(ctx)), None)
            target = str((route or {}).get("Target", ""))
            integration, formers = _integrations(ctx, api_id, target)
            changes += _integration_changes(ctx, integration)
            routed = target == f"integrations/{(integration or {}).get('IntegrationId')}"
            if not routed or (route or {}).get("AuthorizationType") != auth_type(ctx):
                changes.append("route")
            if formers:
                changes.append("former integration")
            stages = api.get_stages(ApiId=api_id).get("Items", [])
            if not any(s["StageName"] == STAGE for s in stages):
                changes.append("stage")
            if ctx.missing_tags(found.get("Tags", {})):
                changes.append("tags")
            permitted = permitted_source(ctx)
            if permitted != invoke_source_arn(ctx, api_id):
                changes.append("permission")

    def apply() -> None:
        if found is None:
            created = api.create_api(Name=name, ProtocolType="HTTP", Tags=ctx.tags)
            api_id = created["ApiId"]
            ctx.state.remember("api", name=name, id=api_id, endpoint=created["ApiEndpoint"])
        else:
            api_id = found["ApiId"]
        if found is None or "permission" in changes:
            _permit(ctx, api_id, replace=permitted is not None)
        integration_id = (integration or {}).get("IntegrationId")
        if found is None or "integration" in changes:
            wanted = desired_integration(ctx)
            if integration_id:
                api.update_integration(ApiId=api_id, IntegrationId=integration_id, **wanted)
            else:
                integration_id = api.create_integration(ApiId=api_id, **wanted)["IntegrationId"]
        if found is None or "route" in changes or "integration" in changes:
            settings = {
                "RouteKey": route_key(ctx),
                "Target": f"integrations/{integration_id}",
                "AuthorizationType": auth_type(ctx),
            }
            if route is None:
                api.create_route(ApiId=api_id, **settings)  # type: ignore[arg-type]
            else:
                api.update_route(ApiId=api_id, RouteId=route["RouteId"], **settings)  # type: ignore[arg-type]
        for former in formers:  # the StartExecution integrations, now that no route leads there
            api.delete_integration(ApiId=api_id, IntegrationId=former)
        if found is None or "stage" in changes:
            api.create_stage(ApiId=api_id, StageName=STAGE, AutoDeploy=True, Tags=ctx.tags)
        if "tags" in changes:
            arn = f"arn:{ctx.names.partition}:apigateway:{ctx.aws.region}::/apis/{api_id}"
            api.tag_resource(ResourceArn=arn, Tags=ctx.tags)

    ids = {"name": name, "id": found["ApiId"], "endpoint": found["ApiEndpoint"]} if found else {}
    settings = (route_key(ctx), auth_type(ctx), f"lambda {ctx.names.function(SUBMIT)}")
    exists = found is not None
    return step("api", API, name, changes, apply, exists=exists, ids=ids, settings=settings)


def api_url(ctx: Context) -> str | None:
    """The URL that starts a job, once the API exists."""
    endpoint = ctx.state.resources.get("api", {}).get("endpoint")
    return f"{endpoint}{ctx.cfg.api.route}" if endpoint else None


def route_arn(region: str, account: str, api_id: str, route: str, partition: str = "aws") -> str:
    """The ARN a caller needs `execute-api:Invoke` on to POST to the route."""
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/{STAGE}/POST{route}"


def curl_command(url: str, region: str, auth: str) -> str:
    """The curl command that starts a job through the API (the original body in job.json).

    With AWS_IAM, curl (7.75+) signs with SigV4 for the API's region and service
    execute-api; temporary credentials also need their session token header.
    """
    body = "-H 'Content-Type: application/json' --data @job.json"
    if auth == "none":
        return f"curl {body} '{url}'"
    return (
        f"curl --aws-sigv4 'aws:amz:{region}:execute-api' "
        '--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" '
        '-H "x-amz-security-token: $AWS_SESSION_TOKEN" '
        f"{body} '{url}'"
    )
