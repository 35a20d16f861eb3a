"""`imgflow export` on aws: the result objects of one job (or of every job in the bucket)
as the export table, the same columns as a local export.

Each result object (`jobs/<job-id>/results/<n>.json`, one per batch or part) is read in key
order, a few ahead (`runtime/jobs.read_results`), and its records become rows as they come:
memory holds a few objects, never a whole job. The metadata's names (a urls job's caption
and other columns) must be known before the first row (a CSV header, a Parquet schema), so
the objects are read twice: once for the names (kept in first-met order), once for the rows.
A row's ``path`` is the object's S3 URI, ``run`` its job id, ``time`` when its batch's
result object was written. A webdataset job's rows (``output.layout: webdataset``: a stored
record's key is its batch's shard) also have ``shard`` (the shard's S3 URI) and ``member``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import aws_errors
from imgflow.aws.runtime.jobs import JOBS_PREFIX, job_prefix, read_results, results_prefix
from imgflow.aws.runtime.shards import SHARDS_PREFIX
from imgflow.documents.export import COLUMNS, SHARD_COLUMNS, ExportTable, meta_columns
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.engine.samples import extension, sample_key
from imgflow.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
PAGE = 1000  # keys a listing call returns (S3's most)


def job_ids(s3: S3Client, bucket: str, run: str | None) -> list[str]:
    """The jobs an export covers: `run` (a job id, an execution's name or ARN), checked to
    have objects in the bucket; else every job of the bucket, in key order."""
    if run is None:
        return list(_job_folders(s3, bucket))
    job = run.rsplit(":", 1)[-1] if run.startswith("arn:") else run
    with aws_errors("s3:ListObjectsV2"):
        found = s3.list_objects_v2(Bucket=bucket, Prefix=job_prefix(job), MaxKeys=1)
    if not job or "/" in job or not found.get("Contents"):
        raise UsageError(f"job {run!r} not found in bucket {bucket}")
    return [job]


def export_table(s3: S3Client, bucket: str, jobs: Sequence[str]) -> ExportTable:
    """The rows of every record of `jobs`' result objects, streamed."""
    names: dict[str, None] = {}
    sharded = False
    for _, _, record in _records(s3, bucket, jobs):
        sharded = sharded or _in_shard(record)
        for name in record.meta or ():
            names.setdefault(name)
    metas = meta_columns(list(names))
    fixed = (*COLUMNS, *SHARD_COLUMNS) if sharded else COLUMNS

    def rows() -> Iterator[dict[str, Any]]:
        for job, at, record in _records(s3, bucket, jobs):
            row = _row(bucket, job, at, record)
            if sharded:
                row.update(_place(bucket, record))
            meta = record.meta or {}
            for name, column in metas.items():
                row[column] = meta.get(name)
            yield row

    return ExportTable((*fixed, *metas.values()), metas, rows())


def _in_shard(record: ResultRecord) -> bool:
    return record.outcome is not Outcome.FAILED and (record.key or "").startswith(SHARDS_PREFIX)


def _place(bucket: str, record: ResultRecord) -> dict[str, str | None]:
    """A webdataset job's image: its shard's S3 URI and its member, named as the shard
    writer names it (runtime/shards.py: the sample key, the content type's extension)."""
    if not _in_shard(record):
        return {"shard": None, "member": None}
    stem = sample_key(record.url)
    return {
        "shard": f"s3://{bucket}/{record.key}",
        "member": f"{stem}.{extension(record.content_type, record.path)}",
    }


def _row(bucket: str, job: str, at: datetime, record: ResultRecord) -> dict[str, Any]:
    failed = record.outcome is Outcome.FAILED
    key = None if failed else record.key
    kind = record.failure_kind
    return {
        "url": record.url,
        "key": key,
        "path": f"s3://{bucket}/{key}" if key else None,
        "bytes": record.bytes,
        "sha256": record.sha256,
        "content_type": record.content_type,
        "width": record.width,
        "height": record.height,
        "run": job,
        "time": at.astimezone(UTC).strftime(TIME_FORMAT),
        "outcome": record.outcome.value,
        "failure_kind": kind.value if failed and kind is not None else None,
        "error": record.error,
    }


def _records(
    s3: S3Client, bucket: str, jobs: Sequence[str]
) -> Iterator[tuple[str, datetime, ResultRecord]]:
    """(job id, when its result object was written, record) of every record, in order."""
    for job in jobs:
        written: deque[datetime] = deque()
        keys = _result_keys(s3, bucket, job, written)
        for _, records in read_results(s3, bucket, keys):
            at = written.popleft()  # read_results keeps the order of `keys`
            for record in records:
                yield job, at, record


def _result_keys(s3: S3Client, bucket: str, job: str, written: deque[datetime]) -> Iterator[str]:
    """The job's result keys, page by page; each one's LastModified appended to `written`."""
    paginator = s3.get_paginator("list_objects_v2")
    with aws_errors("s3:ListObjectsV2"):
        for page in paginator.paginate(
            Bucket=bucket, Prefix=results_prefix(job), PaginationConfig={"PageSize": PAGE}
        ):
            for obj in page.get("Contents", []):
                written.append(obj["LastModified"])
                yield obj["Key"]


def _job_folders(s3: S3Client, bucket: str) -> Iterator[str]:
    """Every job id with a folder under jobs/."""
    paginator = s3.get_paginator("list_objects_v2")
    with aws_errors("s3:ListObjectsV2"):
        for page in paginator.paginate(
            Bucket=bucket, Prefix=JOBS_PREFIX, Delimiter="/", PaginationConfig={"PageSize": PAGE}
        ):
            for folder in page.get("CommonPrefixes", []):
                yield folder["Prefix"][len(JOBS_PREFIX) :].rstrip("/")
