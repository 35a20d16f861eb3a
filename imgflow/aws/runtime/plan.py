"""The plan step: validate a job, drop duplicate paths, write the batch manifest to S3.

The request is the execution input: the original body ``{"baseUrl", "resourcePaths",
"lambdaConcur"}`` or ``{"manifest": {"bucket", "key"}}`` naming such a body in S3, either
with an optional ``"batchSize"`` (and, for a retry, ``"parent"``: the execution it retries,
recorded in the plan result and so in the summary). Only counts and the manifest's key are returned.

The batches hold the job's items (URL, stored key, resource path: engine.plan.Item), made
here from the job once; the download and consolidate steps take them as they are. Each
batch is the input of one child execution of the Distributed Map, and Step Functions
refuses an input over 256 KiB: a batch holds at most `batchSize` items and at most
MAX_CHILD_INPUT_BYTES of JSON, whichever comes first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from imgflow.aws.runtime.jobs import (
    BatchSpec,
    get_text,
    item_json,
    manifest_key,
    put_json_array,
)
from imgflow.engine.job import parse_job_json, validate_concurrency
from imgflow.engine.plan import Item, item_for
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


def job_base_url(s3: S3Client, request: dict[str, Any]) -> str:
    """The validated base URL of an execution input's job."""
    base_url, _, _ = parse_job_json(*job_text(s3, request))
    return base_url


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
    items: Iterable[Item],
    concurrency: int,
    size: int,
    max_bytes: int | None = None,
) -> Iterator[BatchSpec]:
    """Consecutive batches of at most `size` items whose JSON is at most `max_bytes` long.

    Sizes are counted with ``json.dumps``'s default separators, an upper bound of the
    compact form, and with the largest batch number the manifest can have.
    """
    limit = MAX_CHILD_INPUT_BYTES if max_bytes is None else max_bytes
    overhead = _json_bytes(BatchSpec(job_id, 10**9, (), concurrency).to_json())
    batch: list[Item] = []
    used = overhead
    number = 0
    for item in items:
        cost = _json_bytes(item_json(item)) + 2  # ", " before it
        if batch and (len(batch) >= size or used + cost > limit):
            yield BatchSpec(job_id, number, tuple(batch), concurrency)
            number, batch, used = number + 1, [], overhead
        batch.append(item)
        used += cost
    if batch:
        yield BatchSpec(job_id, number, tuple(batch), concurrency)


def plan_job(s3: S3Client, bucket: str, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Write jobs/<job_id>/batches.json; return what the Map and consolidate need.

    The items are made and written batch by batch, never held all at once.
    """
    size = batch_size_of(request)
    base_url, paths, concurrency = parse_job_json(*job_text(s3, request))
    unique = dict.fromkeys(paths)
    concurrency = concurrency or DEFAULT_CONCURRENCY
    items = (item_for(base_url, path) for path in unique)
    specs = split_batches(job_id, items, concurrency, size)
    key = manifest_key(job_id)
    batches = put_json_array(s3, bucket, key, (spec.to_json() for spec in specs))
    return {
        "jobId": job_id,
        "bucket": bucket,
        "manifestKey": key,
        "expected": len(unique),
        "duplicates": len(paths) - len(unique),
        "batches": batches,
        "batchSize": size,
        "concurrency": concurrency,
        "parent": request.get("parent"),
    }
