"""`imgflow deploy` and `imgflow teardown`: the AWS pipeline, made and removed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from imgflow.cli.exits import errors, fail
from imgflow.cli.options import ConfigOpt, Output, OutputOpt, ProfileOpt, RegionOpt, aws_config

if TYPE_CHECKING:
    from imgflow.aws.deploy.state import DeploymentOutputs
    from imgflow.config import Config


def _api_command(cfg: Config, outputs: DeploymentOutputs) -> str | None:
    """The curl command that starts a job through the deployed API, once it exists."""
    from imgflow.aws.deploy.api import curl_command

    if not outputs.api_url:
        return None
    return curl_command(outputs.api_url, outputs.region, cfg.api.auth)


def deploy_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create or update the AWS pipeline: S3, DynamoDB, SNS, IAM, Lambda, Step Functions, API.

    Idempotent: a second deploy with nothing changed changes nothing. State is saved after
    every step in aws.state_dir (.imgflow/deployed/<deployment>.json).
    """
    with errors():
        import json

        from imgflow.aws.client import AwsError
        from imgflow.aws.deploy import Step, deploy
        from imgflow.ui.console import err, out
        from imgflow.ui.deploy import (
            deploy_json,
            outputs_table,
            plan_summary,
            plan_table,
            step_line,
        )

        cfg = aws_config(config, profile, region)

        def progress(step: Step) -> None:
            if step.mutates:
                err.print(step_line(step), markup=False)

        try:
            result = deploy(cfg, dry_run=dry_run, on_step=progress)
        except AwsError as exc:
            if not (dry_run and exc.code == "NoCredentials"):
                raise
            from imgflow.ui.deploy import offline_json, offline_plan

            if output is Output.json:
                out.print_json(json.dumps(offline_json(cfg.deployment)))
            else:
                out.print(offline_plan(cfg.deployment))
            err.print(
                "imgflow: no AWS credentials: this is every resource a first deploy creates\n"
                "without an account: see 'The whole aws path on one machine' in docs/aws.md",
                markup=False,
            )
            raise typer.Exit(0) from None
        for warning in result.plan.warnings:
            err.print(f"[bold yellow]warning:[/] {warning}")
        command = _api_command(cfg, result.outputs)
        if output is Output.json:
            out.print_json(json.dumps({**deploy_json(result), "apiCommand": command}))
        else:
            title = "plan (dry run: nothing changed)" if dry_run else "deploy"
            out.print(plan_table(result.plan.steps, title))
            out.print(plan_summary(result.plan.steps), markup=False)
            out.print(outputs_table(result.outputs))
            if command:
                out.print("start a job through the HTTP API (job.json: the original body):")
                out.print(command, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0)


def teardown_command(
    delete_data: Annotated[
        bool, typer.Option("--delete-data", help="Also delete the images and the index.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete the AWS pipeline, newest resources first.

    A bucket with images or a table with index rows is kept unless --delete-data is given
    (which asks to confirm; --yes for scripts). Safe to run twice, or after a failed deploy.
    """
    with errors():
        import json
        import sys

        from imgflow.aws.teardown import teardown
        from imgflow.errors import UsageError
        from imgflow.ui.console import err, out
        from imgflow.ui.deploy import teardown_table

        cfg = aws_config(config, profile, region)
        if delete_data and not yes:
            if not sys.stdin.isatty():
                raise UsageError("--delete-data deletes every image and index row: add --yes")
            question = f"Delete every image and index row of deployment {cfg.deployment!r}?"
            if not typer.confirm(question, err=True):
                fail("teardown cancelled; nothing was deleted", 1)
        result = teardown(cfg, delete_data=delete_data)
        if output is Output.json:
            out.print_json(json.dumps(result.to_json()))
        else:
            out.print(teardown_table(result))
        for kind, name, reason in result.kept:
            err.print(f"kept {kind} {name}: {reason}", markup=False)
    raise typer.Exit(0)
