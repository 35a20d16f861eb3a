"""Tables and JSON for `imgflow deploy` and `imgflow teardown`. Pure data in, text out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from imgflow.documents.keys import camel_keys

if TYPE_CHECKING:
    from imgflow.aws.deploy import DeployResult, Step
    from imgflow.aws.deploy.state import DeploymentOutputs
    from imgflow.aws.teardown import TeardownResult

ACTION_STYLES = {"create": "green", "update": "yellow", "no change": "dim", "delete": "red"}


def plan_table(steps: tuple[Step, ...], title: str) -> Table:
    """One row per resource: what deploy does to it and what changes."""
    table = Table(title=title, title_justify="left")
    table.add_column("action")
    table.add_column("resource")
    table.add_column("name", overflow="fold")
    table.add_column("changes", overflow="fold")
    for step in steps:
        style = ACTION_STYLES.get(step.action, "")
        table.add_row(step.action, step.kind, step.name, ", ".join(step.changes), style=style)
    return table


def plan_counts(steps: tuple[Step, ...]) -> dict[str, int]:
    """``{"create": 2, "update": 1, "unchanged": 10}``: the JSON document's summary."""
    count = {action: sum(1 for s in steps if s.action == action) for action in ACTION_STYLES}
    counts = {"create": count["create"], "update": count["update"]}
    counts["unchanged"] = count["no change"]
    if count["delete"]:  # a former resource of an older deployment (rare: only when present)
        counts["delete"] = count["delete"]
    return counts


def plan_summary(steps: tuple[Step, ...]) -> str:
    """'2 to create, 1 to update, 10 unchanged'."""
    count = plan_counts(steps)
    deleted = f", {count['delete']} to delete" if "delete" in count else ""
    return (
        f"{count['create']} to create, {count['update']} to update, {count['unchanged']} unchanged"
        + deleted
    )


def step_line(step: Step) -> str:
    """A progress line for a step just applied."""
    verb = {"create": "created", "update": "updated", "delete": "deleted"}.get(
        step.action, "unchanged"
    )
    detail = f" ({', '.join(step.changes)})" if step.changes else ""
    return f"{verb} {step.kind} {step.name}{detail}"


def outputs_table(outputs: DeploymentOutputs) -> Table:
    """The deployment's outputs: where things are."""
    table = Table(title=f"deployment {outputs.deployment}", title_justify="left", show_header=False)
    table.add_column("output", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("region", outputs.region),
        ("bucket", outputs.bucket),
        ("table", outputs.table),
        ("topic", outputs.topic_arn),
        ("state machine", outputs.state_machine_arn),
        ("api url", outputs.api_url or "(created on deploy)"),
    ]
    if outputs.endpoint_url:
        rows.append(("endpoint", outputs.endpoint_url))
    for name, value in rows:
        table.add_row(name, value)
    return table


def deploy_json(result: DeployResult) -> dict[str, Any]:
    """`imgflow deploy --output json`."""
    document: dict[str, Any] = camel_keys(
        {
            "dry_run": result.dry_run,
            "summary": plan_counts(result.plan.steps),  # (an object, as every summary)
            **result.plan.to_json(),
            "outputs": result.outputs.to_json(),
        }
    )
    return document


def teardown_table(result: TeardownResult) -> Table:
    """What teardown deleted and kept."""
    table = Table(title="teardown", title_justify="left")
    table.add_column("action")
    table.add_column("resource")
    table.add_column("name", overflow="fold")
    table.add_column("why", overflow="fold")
    for kind, name in result.deleted:
        table.add_row("deleted", kind, name, "", style="red")
    for kind, name, reason in result.kept:
        table.add_row("kept", kind, name, reason, style="yellow")
    if not result.deleted and not result.kept:
        table.caption = "nothing to delete"
    return table


def offline_rows(deployment: str) -> list[tuple[str, str]]:
    """Every resource a first deploy of `deployment` creates, (kind, name), made from the
    config alone (no account: the bucket's digest needs one)."""
    from infra.names import LAMBDA_ROLES, ROLE_PURPOSES, Names

    names = Names(deployment, "<account>", "<region>")
    return [
        ("s3 bucket", f"{deployment}-images-<digest of account and region>"),
        ("dynamodb table", names.table),
        ("sns topic", names.topic),
        *(("iam role", names.role(purpose)) for purpose in ROLE_PURPOSES),
        *(("log group", f"/aws/lambda/{names.function(r)}") for r in LAMBDA_ROLES),
        *(("lambda function", names.function(role)) for role in LAMBDA_ROLES),
        ("log group", f"/aws/vendedlogs/states/{names.state_machine}"),
        ("state machine", names.state_machine),
        ("http api", names.api),
    ]


def offline_plan(deployment: str) -> Table:
    """The plan of a first deploy without an account, as a table."""
    table = Table(title="plan of a first deploy (dry run, no account)", title_justify="left")
    table.add_column("action")
    table.add_column("resource")
    table.add_column("name", overflow="fold")
    for kind, name in offline_rows(deployment):
        table.add_row("create", kind, name, style=ACTION_STYLES["create"])
    return table


def offline_json(deployment: str) -> dict[str, Any]:
    """`imgflow deploy --dry-run --output json` without an account: the same keys as a
    deploy's document; the outputs are unknown (null) until there is an account."""
    rows = offline_rows(deployment)
    return {
        "dryRun": True,
        "summary": {"create": len(rows), "update": 0, "unchanged": 0},
        "steps": [
            {"resource": kind, "name": name, "action": "create", "changes": []}
            for kind, name in rows
        ],
        "outputs": None,
        "warnings": ["no AWS credentials: the plan of a first deploy, from the config alone"],
        "apiCommand": None,
    }
