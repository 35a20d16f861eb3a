"""`imgflow status` and `imgflow retry`: a past run, recent runs, a run's failures again."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import (
    AllOpt,
    BackendOpt,
    ConfigOpt,
    DataDirOpt,
    LayoutOpt,
    LimitOpt,
    NoWaitOpt,
    Output,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    ShardSizeOpt,
    aws_config,
)


def status(
    run_id: Annotated[
        str | None,
        typer.Argument(help="A run id (local) or an execution ARN or name (aws)."),
    ] = None,
    backend: BackendOpt = None,
    limit: LimitOpt = 20,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
    all_rows: AllOpt = False,
) -> None:
    """Show a past run's per-image results, or list recent runs (executions on aws)."""
    with errors():
        from imgflow.backends import choose
        from imgflow.backends.base import Flags
        from imgflow.backends.local import NoRuns
        from imgflow.cli.follow import shown
        from imgflow.documents.listing import Listing
        from imgflow.ui.console import out
        from imgflow.ui.tables import listing_table

        cfg = aws_config(config, profile, region)
        kind = choose(run_id, backend, cfg.backend)
        kind.refuse("status", Flags(data_dir=data_dir))
        chosen = kind(cfg, data_dir)
        if run_id is None:
            try:
                listing = chosen.runs(limit)
            except NoRuns:
                if output is not Output.json:
                    raise
                listing = Listing("", "runs", (), ())
            if output is Output.json:
                sys.stdout.write(listing.to_json() + "\n")
            else:
                out.print(listing_table(listing, out.width))
            return
        code = shown(chosen.status(run_id), output, all_rows)
    raise typer.Exit(code)


def retry(
    target: Annotated[
        str,
        typer.Argument(help="A run id (local) or an execution ARN or name (aws) to retry."),
    ],
    backend: BackendOpt = None,
    no_wait: NoWaitOpt = False,
    layout: LayoutOpt = None,
    shard_size: ShardSizeOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
    all_rows: AllOpt = False,
) -> None:
    """Run again just the images that failed in a run, skipping any stored since.

    The new run (execution on aws) is linked to the one it retries, and `imgflow status`
    shows which run it retries.
    """
    with errors():
        from imgflow.backends import choose
        from imgflow.backends.base import Flags
        from imgflow.cli.commands.run import printed_when_stopped
        from imgflow.cli.follow import follow, shown
        from imgflow.config import with_overrides
        from imgflow.documents.run import nothing_retried

        cfg = aws_config(config, profile, region)
        cfg = with_overrides(cfg, output={"layout": layout, "shard_size": shard_size})
        kind = choose(target, backend, cfg.backend)
        flags = Flags(data_dir=data_dir, no_wait=no_wait)
        kind.refuse("retry", flags)
        chosen = kind(cfg, data_dir)
        with printed_when_stopped(output):
            outcome = follow(chosen, lambda listener: chosen.retry(target, flags, listener))
        if outcome is None and output is Output.json:
            sys.stdout.write(json.dumps(nothing_retried(target)) + "\n")
        code = shown(outcome, output, all_rows)
    raise typer.Exit(code)
