"""`imgflow report`: a run as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import (
    ConfigOpt,
    DataDirOpt,
    ProfileOpt,
    RegionOpt,
    ReportOutput,
    aws_config,
)


def report_command(
    run_id: Annotated[
        str | None, typer.Argument(help="A local run id (default: the newest run).")
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="HTML file to write (default: <data-dir>/runs/<run>/report.html).",
        ),
    ] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
    thumbnails: Annotated[
        bool,
        typer.Option(
            "--thumbnails/--no-thumbnails",
            help="Make missing thumbnails with Pillow (the report extra: pip install Pillow).",
        ),
    ] = True,
    embed_thumbnails: Annotated[
        bool,
        typer.Option(
            "--embed-thumbnails", help="Put the thumbnails inside the page (one file to share)."
        ),
    ] = False,
    link_hours: Annotated[
        int,
        typer.Option(
            "--link-hours", min=1, max=168, help="aws: how long the presigned image links last."
        ),
    ] = 168,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: Annotated[
        ReportOutput,
        typer.Option(
            "--output",
            "-o",
            help='html: print the file written; json: {"run", "report"} (the file).',
        ),
    ] = ReportOutput.html,
) -> None:
    """Write a run as one self-contained HTML page: counts, rate, failures, a gallery.

    The page loads nothing from the network but the images: a local run's are linked
    relative to the page, an execution's by presigned S3 URLs. Prints the file written.
    """
    with errors():
        from imgflow.backends import choose
        from imgflow.backends.base import Flags, ReportOptions
        from imgflow.ui.console import out

        cfg = aws_config(config, profile, region)
        kind = choose(run_id, None, "local")  # (an execution is named by its ARN)
        kind.refuse("report", Flags(data_dir=data_dir))
        options = ReportOptions(output_file, thumbnails, embed_thumbnails, link_hours * 3600)
        written = kind(cfg, data_dir).report(run_id, options)
        if output is ReportOutput.json:
            import json
            import sys

            # ("run" is null when the newest run was written: it was not named)
            sys.stdout.write(json.dumps({"run": run_id, "report": str(written)}) + "\n")
        else:
            out.print(str(written), markup=False)
        if open_page:
            import webbrowser

            webbrowser.open(written.as_uri())
    raise typer.Exit(0)
