"""Jobs of millions of paths: the job object is uploaded one entry per line and the plan
step streams it (duplicates dropped through disk), consolidate streams the results into
failures.json; the memory of both stays flat in the number of paths.

The memory is measured with tracemalloc around the handler called directly, on `DiskS3`
(objects in files: moto would hold them in this process's memory and count them)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from support.disk_s3 import DiskS3
from support.plan_memory import peak_of, plan_peak, shrink_buffers

from imgflow.aws.client import Aws
from imgflow.aws.runtime import jobs
from imgflow.aws.runtime import plan as plan_step
from imgflow.aws.runtime.consolidate import consolidate
from imgflow.aws.runtime.job_lines import job_lines, open_job, put_job
from imgflow.aws.runtime.jobs import (
    get_json,
    iter_json_array,
    job_key,
    put_json_array,
    result_key,
)
from imgflow.aws.runtime.unique import UniquePaths
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.errors import JobError

BUCKET = "imgflow-scale"
BASE = "https://images.example.com/"


def paths(count: int) -> list[str]:
    return [f"p/{n % 977}/{n}.jpg" for n in range(count)]


def test_unique_paths_through_disk_keep_first_occurrences_in_order() -> None:
    rng = random.Random(7)
    given = [f"x/{rng.randrange(3000)}.jpg" for _ in range(10_000)]
    expected = list(dict.fromkeys(given))
    for partitions in (1, 7):
        unique = UniquePaths(iter(given), partitions)
        assert list(unique) == expected
        assert (unique.total, unique.unique) == (len(given), len(expected))


def test_the_job_object_is_valid_json_and_streams_back_entry_by_entry(tmp_path: Path) -> None:
    s3: Any = DiskS3(tmp_path)
    body = {"baseUrl": BASE, "lambdaConcur": 3, "resourcePaths": ["a.jpg", 'q"\\.jpg', "é.jpg"]}
    put_job(s3, BUCKET, "jobs/j/job.json", body)
    assert get_json(s3, BUCKET, "jobs/j/job.json") == body  # the original format, as before
    opened = open_job(s3, BUCKET, "jobs/j/job.json", "job")
    assert not isinstance(opened, str)
    assert (opened.header, opened.field) == ({"baseUrl": BASE, "lambdaConcur": 3}, "resourcePaths")
    assert list(opened.entries) == body["resourcePaths"]
    cut = b"".join(job_lines(body)).rsplit(b"]}", 1)[0]
    s3.put_object(Bucket=BUCKET, Key="jobs/j/cut.json", Body=cut)
    cut_open = open_job(s3, BUCKET, "jobs/j/cut.json", "cut")
    assert not isinstance(cut_open, str)
    with pytest.raises(JobError, match="ends before its list is closed"):
        list(cut_open.entries)


def test_a_job_of_100000_paths_is_planned_from_its_uploaded_lines(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through moto: 100,000 paths (and 5,000 repeated), deduplicated through disk in
    several partitions, planned in order."""
    s3 = aws.s3()
    s3.create_bucket(Bucket=BUCKET)
    given = paths(100_000)
    given += given[:5_000]
    put_job(s3, BUCKET, job_key("big"), {"baseUrl": BASE, "resourcePaths": given})
    monkeypatch.setattr(plan_step, "PARTITION_BYTES", 256 * 1024)  # 10 partitions
    request = {"manifest": f"s3://{BUCKET}/{job_key('big')}", "batchSize": 1000}
    result = plan_step.plan_job(s3, BUCKET, "big", request)
    assert (result["expected"], result["duplicates"], result["batches"]) == (100_000, 5_000, 100)
    batches = list(iter_json_array(s3, BUCKET, result["manifestKey"]))
    assert [i["path"] for b in batches for i in b["items"]] == given[:100_000]


def test_a_manifest_elsewhere_than_the_deployments_jobs_is_refused(aws: Aws) -> None:
    for manifest in ("s3://other-bucket/jobs/x/job.json", f"s3://{BUCKET}/images/x.jpg", 7):
        with pytest.raises(JobError, match="manifest must"):
            plan_step.plan_job(aws.s3(), BUCKET, "x", {"manifest": manifest})


def plan_peak_of(root: Path, count: int) -> int:
    return plan_peak(root, BUCKET, {"baseUrl": BASE, "resourcePaths": paths(count)})


@pytest.fixture
def small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions and spools of 64 KB (reads of 16 KB): at the real sizes (4 MB, 8 MB,
    256 KB) the same holds for jobs a hundred times larger."""
    shrink_buffers(monkeypatch, 64 * 1024, 16 * 1024)


@pytest.mark.usefixtures("small_buffers")
def test_plan_memory_is_flat_in_the_number_of_paths(tmp_path: Path) -> None:
    small = plan_peak_of(tmp_path / "small", 2_000)
    large = plan_peak_of(tmp_path / "large", 20_000)
    assert large < 2 * small, (small, large)  # ten times the paths


def consolidate_peak(root: Path, count: int) -> int:
    s3: Any = DiskS3(root)
    per_batch = 100
    batches = count // per_batch
    for batch in range(batches):
        records = [
            ResultRecord(
                url=f"{BASE}{batch}/{n}.jpg", path=f"{batch}/{n}.jpg", outcome=Outcome.FAILED,
                error=f"Could not find: {BASE}{batch}/{n}.jpg",
            )
            for n in range(per_batch)
        ]  # fmt: skip
        put_json_array(s3, BUCKET, result_key("j", batch), (r.to_json() for r in records))
    plan = {"jobId": "j", "manifestKey": "jobs/j/batches.json", "batches": batches}
    plan["expected"] = count
    result: dict[str, Any] = {}
    peak = peak_of(lambda: result.update(consolidate(s3, BUCKET, plan, 50)))
    assert (result["total"], result["failed"]) == (count, count)
    assert len(get_json(s3, BUCKET, result["failuresKey"])) == count
    return peak


@pytest.mark.usefixtures("small_buffers")
def test_consolidate_memory_is_flat_in_the_number_of_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results are read ahead by READ_THREADS threads, at most twice as many objects as
    threads: with 16 threads the 20 batches of 2,000 failures did not fill that window and
    20,000 did, and the peak of 20,000 was 1.8 to 1.9 times that of 2,000 (a bound of 2
    failed once). With 2 threads both sizes fill it; what is left is what grows."""
    monkeypatch.setattr(jobs, "READ_THREADS", 2)
    small = consolidate_peak(tmp_path / "small", 2_000)
    large = consolidate_peak(tmp_path / "large", 20_000)
    assert large < 2 * small, (small, large)
