"""Where a job's objects live in the bucket, and reading and writing them as JSON.

    jobs/<job-id>/job.json            the job as uploaded by the CLI (original body format)
    jobs/<job-id>/batches.json        the manifest: a JSON array of batches of items (plan)
    jobs/<job-id>/results/<n>.json    one batch's result records (the download Lambda);
                                      <n>.<part>.json for the parts of a batch handed back
                                      unfinished at its time limit and run again
    jobs/<job-id>/failures.json       the JSON array of failure messages (consolidate)
    jobs/<job-id>/summary.json        the run's counts (consolidate)

Shared by the Lambda handlers and the job driver; no imports beyond the engine and client.
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import aws_errors
from imgflow.engine.plan import NO_META, Item
from imgflow.engine.records import ResultRecord

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

JOBS_PREFIX = "jobs/"
READ_THREADS = 16
SPOOL_BYTES = 8 * 1024 * 1024  # a manifest larger than this is spooled to disk (Lambda's /tmp)


def job_prefix(job_id: str) -> str:
    """The folder of one job's objects."""
    return f"{JOBS_PREFIX}{job_id}/"


def job_key(job_id: str) -> str:
    """The job body uploaded by the CLI."""
    return f"{job_prefix(job_id)}job.json"


def manifest_key(job_id: str) -> str:
    """The batch manifest the Distributed Map reads."""
    return f"{job_prefix(job_id)}batches.json"


def results_prefix(job_id: str) -> str:
    """The folder of the per-batch result objects."""
    return f"{job_prefix(job_id)}results/"


def result_key(job_id: str, batch: int, part: int = 0) -> str:
    """The result object of batch number `batch` (of its `part`, when it was run again)."""
    tail = "" if part == 0 else f".{part}"
    return f"{results_prefix(job_id)}{batch:06d}{tail}.json"


def failures_key(job_id: str) -> str:
    """The JSON array of every failure message of the job."""
    return f"{job_prefix(job_id)}failures.json"


def summary_key(job_id: str) -> str:
    """The job's final counts."""
    return f"{job_prefix(job_id)}summary.json"


def item_json(item: Item) -> dict[str, Any]:
    """An item as a manifest holds it (`path` and `meta` only when not empty)."""
    data: dict[str, Any] = {"url": item.url, "key": item.key}
    if item.path:
        data["path"] = item.path
    if item.meta:
        data["meta"] = dict(item.meta)
    return data


def item_from_json(data: dict[str, Any]) -> Item:
    """An item written by `item_json`."""
    meta = data.get("meta")
    return Item(
        url=str(data["url"]),
        key=str(data["key"]),
        meta=MappingProxyType(dict(meta)) if meta else NO_META,
        path=str(data.get("path", "")),
    )


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """One item of the manifest: what one download Lambda invocation fetches."""

    job_id: str
    batch: int
    items: tuple[Item, ...]
    concurrency: int
    # 0 for a manifest item; 1, 2, ... for the rest of a batch that ran out of time.
    part: int = 0

    def to_json(self) -> dict[str, Any]:
        """The manifest item."""
        data: dict[str, Any] = {
            "jobId": self.job_id,
            "batch": self.batch,
            "items": [item_json(item) for item in self.items],
            "concurrency": self.concurrency,
        }
        if self.part:
            data["part"] = self.part
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchSpec:
        """A manifest item (extra keys, such as a caught error, are ignored)."""
        return cls(
            job_id=str(data["jobId"]),
            batch=int(data["batch"]),
            items=tuple(item_from_json(item) for item in data["items"]),
            concurrency=int(data["concurrency"]),
            part=int(data.get("part", 0)),
        )


def put_json(s3: S3Client, bucket: str, key: str, data: Any) -> None:
    """Write `data` as a JSON object."""
    body = json.dumps(data, separators=(",", ":")).encode()
    with aws_errors("s3:PutObject"):
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def put_json_array(s3: S3Client, bucket: str, key: str, rows: Iterable[Any]) -> int:
    """Write `rows` as one JSON array; how many there were.

    The array is spooled through a temporary file (on disk past SPOOL_BYTES) and sent with
    one PutObject, so memory stays flat however many rows there are.
    """
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        spool.write(b"[")
        for row in rows:
            spool.write(b"," if count else b"")
            spool.write(json.dumps(row, separators=(",", ":")).encode())
            count += 1
        spool.write(b"]")
        spool.seek(0)
        with aws_errors("s3:PutObject"):
            s3.put_object(Bucket=bucket, Key=key, Body=spool, ContentType="application/json")
    return count


def get_text(s3: S3Client, bucket: str, key: str) -> str:
    """The text of an object (NotFoundError when it is absent)."""
    with aws_errors("s3:GetObject"):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


def get_json(s3: S3Client, bucket: str, key: str) -> Any:
    """A JSON object."""
    return json.loads(get_text(s3, bucket, key))


def list_keys(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under `prefix`, in key order."""
    paginator = s3.get_paginator("list_objects_v2")
    with aws_errors("s3:ListObjectsV2"):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]


def batch_of(key: str) -> int:
    """The batch number of a result object key."""
    return int(key.rsplit("/", 1)[-1].split(".", 1)[0])


def write_results(
    s3: S3Client,
    bucket: str,
    job_id: str,
    batch: int,
    records: Sequence[ResultRecord],
    part: int = 0,
) -> None:
    """Write one batch's (or one part's) result records."""
    put_json(s3, bucket, result_key(job_id, batch, part), [r.to_json() for r in records])


def result_keys(s3: S3Client, bucket: str, job_id: str) -> list[str]:
    """The keys of the result objects written so far, in batch order (listing only)."""
    return list(list_keys(s3, bucket, results_prefix(job_id)))


def read_results(
    s3: S3Client, bucket: str, keys: Iterable[str]
) -> Iterator[tuple[int, list[ResultRecord]]]:
    """(batch number, records) of each result object in `keys`, in that order.

    A few threads read ahead, at most 2 * READ_THREADS objects, so a slow consumer (a
    renderer writing a million records) never holds more than that in memory.
    """

    def read(key: str) -> tuple[int, list[ResultRecord]]:
        rows = get_json(s3, bucket, key)
        return batch_of(key), [ResultRecord.from_json(row) for row in rows]

    ahead: deque[Future[tuple[int, list[ResultRecord]]]] = deque()
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        try:
            for key in keys:
                ahead.append(pool.submit(read, key))
                if len(ahead) >= 2 * READ_THREADS:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:  # a consumer that stops early leaves nothing to read behind it
            for future in ahead:
                future.cancel()


def iter_results(
    s3: S3Client, bucket: str, job_id: str, skip: Iterable[int] = ()
) -> Iterator[tuple[int, list[ResultRecord]]]:
    """(batch number, records) for every batch with results written so far (except
    `skip`), in batch order, read by a few threads at once; the parts of a batch that was
    run again come together as one."""
    done = set(skip)
    keys = [k for k in result_keys(s3, bucket, job_id) if batch_of(k) not in done]
    current: tuple[int, list[ResultRecord]] | None = None
    for number, records in read_results(s3, bucket, keys):
        if current is not None and current[0] == number:
            current[1].extend(records)
            continue
        if current is not None:
            yield current
        current = (number, records)
    if current is not None:
        yield current
