"""An in-process local run that stores its images in webdataset shards."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from imgflow.backends.local import run_settings
from imgflow.engine.job import validate_base_url
from imgflow.local.job import LocalJob, LocalRunResult
from imgflow.local.layouts.webdataset import webdataset_layout
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job
from support.settings import quick_config


def webdataset_run(base_url: str, paths: list[str], data: Path) -> LocalRunResult:
    """`paths` under `base_url` stored in `data` as webdataset shards of up to 10 images
    (2 at a time, one batch of 5 at most, quick timeouts)."""
    job = LocalJob(
        source=from_job(validate_base_url(base_url), paths, None),
        concurrency=2,
        batch_size=5,
        max_batches=1,
    )
    settings = replace(run_settings(quick_config(timeout=0.5)), layout=webdataset_layout(10))
    return run_job(job, settings, data)
