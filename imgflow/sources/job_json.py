"""The original pipeline's job body as a source: ``{"baseUrl", "resourcePaths",
"lambdaConcur"}``, validated by `engine/job.py` (the same checks as the aws backend and
`imgflow serve`), its paths held in memory as the body itself is."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from imgflow.engine.job import parse_job_json
from imgflow.errors import JobError
from imgflow.sources.paths import PathsSource

KIND = "job"


def from_job_file(job_file: str) -> PathsSource:
    """A job from an original-format JSON body (`--job FILE`, '-' for standard input)."""
    label = "stdin" if job_file == "-" else job_file
    try:
        raw = sys.stdin.buffer.read() if job_file == "-" else Path(job_file).read_bytes()
    except FileNotFoundError:
        raise JobError(f"{job_file}: job file not found") from None
    except OSError as exc:
        raise JobError(f"{job_file}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobError(f"{label}: not UTF-8 text") from None
    base, paths, concurrency = parse_job_json(text, label)
    return from_job(base, paths, concurrency, label)


def from_job(
    base_url: str, paths: Sequence[str], concurrency: int | None, file: str | None = None
) -> PathsSource:
    """The source of an already validated job body (`imgflow serve` keeps its jobs so)."""
    return PathsSource(base_url, lambda: iter(paths), len(paths), concurrency, kind=KIND, file=file)
