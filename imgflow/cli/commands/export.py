"""`imgflow export`: the index as a table (CSV, JSON Lines or Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import BackendOpt, ConfigOpt, DataDirOpt, backend_value, load_config


def export_command(
    fmt: Annotated[
        str,
        typer.Option("--format", metavar="csv|jsonl|parquet", help="The table's format."),
    ] = "csv",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write to FILE (default: standard output)."
        ),
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", metavar="RUN", help="Only this run's results.")
    ] = None,
    backend: BackendOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write the index as a table: url, key, path, bytes, sha256, content type, width,
    height, run, time, outcome, failure kind, error and each metadata column.

    One row per result of every run in the data folder (or of --run RUN). On aws, from the
    result objects of job --run (a job id or execution ARN), or of every job in the bucket.
    Join it back to your own table by url.
    """
    with errors():
        from imgflow.backends import choose
        from imgflow.backends.base import Flags

        cfg = load_config(config)
        kind = choose(run, backend_value(backend), cfg.backend)  # (an execution ARN: aws)
        kind.refuse("export", Flags(data_dir=data_dir))
        kind(cfg, data_dir).export(fmt, output, run)
