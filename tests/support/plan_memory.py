"""The plan step's peak memory on a job of a given size (tests of flat memory, aws).

- `peak_of(call)`: the peak of Python allocations (tracemalloc) while `call()` runs.
- `plan_peak(root, bucket, body, **request)`: `body` uploaded one entry per line to a
  `DiskS3` under `root` (objects in files, so they do not count), then the peak of planning
  it from that manifest (`request` adds to the plan's request, e.g. batchSize).
- `shrink_buffers(monkeypatch, spool, read)`: the plan's partitions and spools of `spool`
  bytes and reads of `read`, so that jobs small enough for a test's time (tracemalloc slows
  Python down a lot) show what grows.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgflow.aws.runtime import job_lines, jobs
from imgflow.aws.runtime import plan as plan_step
from support.disk_s3 import DiskS3


def peak_of(call: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def plan_peak(root: Path, bucket: str, body: dict[str, Any], **request: Any) -> int:
    s3: Any = DiskS3(root)
    key = jobs.job_key("j")
    job_lines.put_job(s3, bucket, key, body)
    planned = {"manifest": {"bucket": bucket, "key": key}, **request}
    return peak_of(lambda: plan_step.plan_job(s3, bucket, "j", planned))


def shrink_buffers(monkeypatch: pytest.MonkeyPatch, spool: int, read: int) -> None:
    monkeypatch.setattr(plan_step, "PARTITION_BYTES", spool)
    monkeypatch.setattr(jobs, "SPOOL_BYTES", spool)
    monkeypatch.setattr(job_lines, "READ_CHUNK", read)
