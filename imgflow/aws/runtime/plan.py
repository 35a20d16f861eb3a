"""The plan step: validate a job, drop duplicate paths, write the batch manifest to S3.

The request is the execution input: the original body ``{"baseUrl", "resourcePaths",
"lambdaConcur"}`` or ``{"manifest": {"bucket", "key"}}`` naming such a body in S3, either
with an optional ``"batchSize"`` (and, for a retry, ``"parent"``: the execution it retries,
recorded in the plan result and so in the summary). Only counts and the manifest's key are returned.

Each manifest item is the input of one child execution of the Distributed Map, and Step
Functions refuses an input over 256 KiB: a batch holds at most `batchSize` paths and at
most MAX_CHILD_INPUT_BYTES of JSON, whichever comes first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from imgflow.aws.runtime.jobs import BatchSpec, get_text, manifest_key, put_json
from imgflow.engine.job import parse_job_json, validate_concurrency
from imgflow.engine.plan import item_for
from imgflow.errors import JobError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_CONCURRENCY = 5  # requests in flight per batch when the job names none
DEFAULT_BATCH_SIZE = 250  # images per download Lambda invocation
MAX_BATCH_SIZE = 5000
# A child execution's input (one manifest item) stays under this, well below Step Functions'
# 256 KiB, leaving room for the error a caught crash adds to the child's state.
MAX_CHILD_INPUT_BYTES = 200_000


def job_text(s3: S3Client, request: dict[str, Any]) -> tuple[str, str]:
    """(job body text, where it came from) of an execution input."""
    manifest = request.get("manifest")
    if manifest is None:
        body = {k: v for k, v in request.items() if k not in ("batchSize", "parent")}
        return json.dumps(body), "job"
    if not isinstance(manifest, dict) or not {"bucket", "key"} <= set(manifest):
        raise JobError("job: manifest must name a bucket and a key")
    bucket, key = str(manifest["bucket"]), str(manifest["key"])
    return get_text(s3, bucket, key), f"s3://{bucket}/{key}"


def batch_size_of(request: dict[str, Any]) -> int:
    """The requested batch size, or the default."""
    size = validate_concurrency(request.get("batchSize", DEFAULT_BATCH_SIZE), "batchSize")
    if size > MAX_BATCH_SIZE:
        raise JobError(f"batchSize: at most {MAX_BATCH_SIZE}, got {size}")
    return size


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value).encode())


def split_batches(
    job_id: str,
    base_url: str,
    paths: Iterable[str],
    concurrency: int,
    size: int,
    max_bytes: int | None = None,
) -> Iterator[BatchSpec]:
    """Consecutive batches of at most `size` paths whose JSON is at most `max_bytes` long.

    Sizes are counted with ``json.dumps``'s default separators, an upper bound of the
    compact form, and with the largest batch number the manifest can have.
    """
    limit = MAX_CHILD_INPUT_BYTES if max_bytes is None else max_bytes
    empty = BatchSpec(job_id, 10**9, base_url, (), concurrency).to_json()
    overhead = _json_bytes(empty)
    batch: list[str] = []
    used = overhead
    number = 0
    for path in paths:
        cost = _json_bytes(path) + 2  # ", " before it
        if batch and (len(batch) >= size or used + cost > limit):
            yield BatchSpec(job_id, number, base_url, tuple(batch), concurrency)
            number, batch, used = number + 1, [], overhead
        batch.append(path)
        used += cost
    if batch:
        yield BatchSpec(job_id, number, base_url, tuple(batch), concurrency)


def plan_job(s3: S3Client, bucket: str, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Write jobs/<job_id>/batches.json; return what the Map and consolidate need."""
    size = batch_size_of(request)
    text, source = job_text(s3, request)
    base_url, paths, concurrency = parse_job_json(text, source)
    unique = list(dict.fromkeys(paths))
    concurrency = concurrency or DEFAULT_CONCURRENCY
    normal = (item_for(base_url, path).path for path in unique)
    manifest = [
        spec.to_json() for spec in split_batches(job_id, base_url, normal, concurrency, size)
    ]
    key = manifest_key(job_id)
    put_json(s3, bucket, key, manifest)
    return {
        "jobId": job_id,
        "bucket": bucket,
        "manifestKey": key,
        "expected": len(unique),
        "duplicates": len(paths) - len(unique),
        "batches": len(manifest),
        "batchSize": size,
        "concurrency": concurrency,
        "parent": request.get("parent"),
    }
