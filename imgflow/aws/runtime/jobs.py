"""Where a job's objects live in the bucket, and reading and writing them as JSON.

    jobs/<job-id>/job.json            the job as uploaded by the CLI (original body format,
                                      one entry per line: job_lines.py)
    jobs/<job-id>/batches.json        the manifest: a JSON array of batches of items (plan)
    jobs/<job-id>/lanes.json          a urls job's Map items: one lane (a host's batches,
                                      run one after the other) per host
    jobs/<job-id>/batches/<n>.json    a urls job's batch n, read by the lane that runs it
    jobs/<job-id>/results/<n>.json    one batch's result records (the download Lambda);
                                      <n>.<part>.json for the parts of a batch handed back
                                      unfinished at its time limit and run again
    jobs/<job-id>/robots/<sha>.json   a host's robots.txt answer, read by the job's first batch
                                      of the host for its later ones (runtime/robots_cache.py)
    jobs/<job-id>/failures.json       the JSON array of failure messages (consolidate)
    jobs/<job-id>/summary.json        the run's counts (consolidate)

Shared by the Lambda handlers and the job driver; no imports beyond the engine and client.
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import aws_errors
from imgflow.engine.plan import NO_META, Item, meta_view
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


def lanes_key(job_id: str) -> str:
    """The lanes a urls job's Distributed Map reads."""
    return f"{job_prefix(job_id)}lanes.json"


def batch_key(job_id: str, batch: int) -> str:
    """Batch `batch` of a urls job, an object of its own (a lane reads it when its turn comes)."""
    return f"{job_prefix(job_id)}batches/{batch:06d}.json"


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
        meta=meta_view(dict(meta)) if meta else NO_META,
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
    # In a lane (a urls job): the lane's last batch number; the batches after this one,
    # up to it, run after it. None for a batch of its own.
    last: int | None = None

    def next_ref(self) -> dict[str, Any] | None:
        """The reference of the lane's next batch, None after the lane's last one."""
        if self.last is None or self.batch >= self.last:
            return None
        return LaneRef(self.job_id, self.batch + 1, self.last).to_json()

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
        if self.last is not None:
            data["last"] = self.last
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
            last=None if data.get("last") is None else int(data["last"]),
        )


@dataclass(frozen=True, slots=True)
class LaneRef:
    """A Map item of a urls job: one host's batches `batch`..`last`, run in turn.

    It also stands for one batch of the lane (the first not yet run): the download step
    reads that batch's object (`load_batch`) and hands back the reference of the next.
    """

    job_id: str
    batch: int
    last: int

    def to_json(self) -> dict[str, Any]:
        """The Map item (no ``items``: `load_batch` reads them)."""
        return {"jobId": self.job_id, "batch": self.batch, "last": self.last}


def load_batch(s3: S3Client, bucket: str, data: dict[str, Any]) -> BatchSpec:
    """The batch a Map item or a lane reference names: inline (with ``items``), or read
    from jobs/<job-id>/batches/<n>.json."""
    if "items" in data:
        return BatchSpec.from_json(data)
    return BatchSpec.from_json(
        get_json(s3, bucket, batch_key(str(data["jobId"]), int(data["batch"])))
    )


def put_json(s3: S3Client, bucket: str, key: str, data: Any) -> None:
    """Write `data` as a JSON object."""
    body = json.dumps(data, separators=(",", ":")).encode()
    with aws_errors("s3:PutObject"):
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def put_json_array(s3: S3Client, bucket: str, key: str, rows: Iterable[Any]) -> int:
    """Write `rows` as one JSON array, a row per line (`iter_json_array` streams it back);
    how many there were.

    The array is spooled through a temporary file (on disk past SPOOL_BYTES) and sent with
    one PutObject, so memory stays flat however many rows there are.
    """
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        spool.write(b"[\n")
        for row in rows:
            spool.write(b",\n" if count else b"")
            spool.write(json.dumps(row, separators=(",", ":")).encode())
            count += 1
        spool.write(b"\n]")
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


def iter_json_array(s3: S3Client, bucket: str, key: str) -> Iterator[Any]:
    """The rows of a JSON array object, read as they arrive when `put_json_array` wrote it
    (a row per line), else parsed whole."""
    with aws_errors("s3:GetObject"):
        lines = s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines(chunk_size=1 << 20)
    first = next(lines, b"")
    if first != b"[":
        yield from json.loads(first + b"".join(lines))
        return
    for line in lines:
        if line and line != b"]":
            yield json.loads(line.removesuffix(b","))


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
    items: Iterable[Item] = (),
) -> None:
    """Write one batch's (or one part's) result records; a record whose URL is an item's
    of `items` with metadata carries it (``"meta"``)."""
    metas = {item.url: item.meta for item in items if item.meta}
    rows = [record_json(r, metas.get(r.url)) for r in records]
    put_json(s3, bucket, result_key(job_id, batch, part), rows)


def record_json(record: ResultRecord, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """A result record as a results object holds it, with its item's metadata, if any."""
    data = record.to_json()
    if meta:
        data["meta"] = dict(meta)
    return data


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
