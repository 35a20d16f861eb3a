"""The options several commands share, declared once, and the config they load."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from imgflow.config import Config


class Output(StrEnum):
    """Output formats."""

    table = "table"
    json = "json"


class ReportOutput(StrEnum):
    """What `imgflow report` prints: the file's path, or a JSON document naming it."""

    html = "html"
    json = "json"


class BackendName(StrEnum):
    """Backends (imgflow/backends/)."""

    local = "local"
    aws = "aws"


def backend_value(choice: BackendName | None) -> Literal["local", "aws"] | None:
    """--backend as the config's value (None when not given)."""
    if choice is None:
        return None
    return "aws" if choice is BackendName.aws else "local"


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: ./imgflow.yaml if present)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Local data folder (default: local.data_dir, imgflow-data)."),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]
BackendOpt = Annotated[
    BackendName | None, typer.Option("--backend", help="local (default) or aws.")
]
AllOpt = Annotated[
    bool,
    typer.Option(
        "--all", help="List every image in the table (default: the failures; json lists all)."
    ),
]
LimitOpt = Annotated[
    int, typer.Option("--limit", min=1, help="How many recent runs (or executions) to list.")
]
NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="aws: print the execution ARN and return.")
]
LayoutOpt = Annotated[
    str | None,
    typer.Option(
        "--layout",
        metavar="files|webdataset|parquet",
        help="How images are stored: one file each, or WebDataset / Parquet shards"
        " (output.layout; default files).",
    ),
]
ShardSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--shard-size", metavar="N", help="Samples per shard (output.shard_size; default 10000)."
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (default: aws.profile, AWS_PROFILE).")
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region", help="AWS region (default: aws.region, AWS_REGION, AWS_DEFAULT_REGION)."
    ),
]


def load_config(path: Path | None) -> Config:
    """The config (`path`, else ./imgflow.yaml), warning of unknown IMGFLOW_* variables."""
    from imgflow import config
    from imgflow.ui.console import warn

    cfg = config.load(path)
    for warning in config.unknown_env():
        warn(warning)
    return cfg


def aws_config(path: Path | None, profile: str | None, region: str | None) -> Config:
    """The config with --profile and --region applied."""
    from imgflow.config import with_overrides

    return with_overrides(load_config(path), aws={"profile": profile, "region": region})
