"""The plan step: validate a job, drop duplicate paths, write the batch manifest to S3.

The request is the execution input: the original body ``{"baseUrl", "resourcePaths",
"lambdaConcur"}`` (or ``{"urls", "lambdaConcur"}``: full URLs from many hosts) or
``{"manifest": {"bucket", "key"}}`` naming such a body in S3, either
with an optional ``"batchSize"`` (and, for a retry, ``"parent"``: the execution it retries,
recorded in the plan result and so in the summary). Only counts and the manifest's key are returned.

A ``urls`` job is planned in lanes (`plan_lanes`): its items are grouped by host (scheme,
host, port), every batch holds one host's items, and each host's batches form one lane,
numbered consecutively. The Map runs lanes, not batches (``mapKey`` is jobs/<id>/lanes.json,
one small reference per lane); a lane runs its batches one after the other (each batch is
its own object, jobs/<id>/batches/<n>.json, and the download step hands back the next
one), so a host never has more than the job's concurrency of requests in flight, however
many Lambdas run at once. Entries of ``urls`` that are not URLs are failed here, in a last
batch of their own whose results object the plan writes.

The batches hold the job's items (URL, stored key, resource path: engine.plan.Item), made
here from the job once; the download and consolidate steps take them as they are. Each
batch is the input of one child execution of the Distributed Map, and Step Functions
refuses an input over 256 KiB: a batch holds at most `batchSize` items and at most
MAX_CHILD_INPUT_BYTES of JSON, whichever comes first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imgflow.aws.runtime.jobs import (
    BatchSpec,
    LaneRef,
    batch_key,
    get_text,
    item_json,
    lanes_key,
    manifest_key,
    put_json,
    put_json_array,
    write_results,
)
from imgflow.engine.failures import FailureKind
from imgflow.engine.job import validate_concurrency
from imgflow.engine.plan import Item, item_for
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.errors import JobError
from imgflow.sources.job_json import Rejected, UrlsSource, parse_job_text

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_CONCURRENCY = 5  # requests in flight per batch when the job names none
DEFAULT_BATCH_SIZE = 250  # images per download Lambda invocation
MAX_BATCH_SIZE = 5000
# A child execution's input (one manifest item) stays under this, well below Step Functions'
# 256 KiB, leaving room for the error a caught crash adds to the child's state.
MAX_CHILD_INPUT_BYTES = 200_000
WRITE_THREADS = 16  # PutObjects of a lane job's batch objects at once


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


def host_of(url: str) -> str:
    """The host a politeness cap is per: ``scheme://host[:port]`` (port as written)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


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
    start: int = 0,
) -> Iterator[BatchSpec]:
    """Consecutive batches of at most `size` items whose JSON is at most `max_bytes` long.

    Sizes are counted with ``json.dumps``'s default separators, an upper bound of the
    compact form, and with the largest batch number the manifest can have.
    """
    limit = MAX_CHILD_INPUT_BYTES if max_bytes is None else max_bytes
    overhead = _json_bytes(BatchSpec(job_id, 10**9, (), concurrency, last=10**9).to_json())
    batch: list[Item] = []
    used = overhead
    number = start
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
    text, label = job_text(s3, request)
    source = parse_job_text(text, label)
    if isinstance(source, UrlsSource):
        return plan_lanes(s3, bucket, job_id, source, size, request.get("parent"))
    base_url, paths, concurrency = source.base_url, list(source.paths()), source.concurrency
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
        "mapKey": key,
        "expected": len(unique),
        "duplicates": len(paths) - len(unique),
        "batches": batches,
        "batchSize": size,
        "concurrency": concurrency,
        "parent": request.get("parent"),
    }


def lanes(job_id: str, items: Iterable[Item], concurrency: int, size: int) -> list[list[BatchSpec]]:
    """Each host's batches (one lane per host, in order of the host's first item),
    numbered consecutively across lanes; every batch holds one host's items."""
    hosts: dict[str, list[Item]] = {}
    for item in items:
        hosts.setdefault(host_of(item.url), []).append(item)
    planned: list[list[BatchSpec]] = []
    number = 0
    for host_items in hosts.values():
        lane = list(split_batches(job_id, host_items, concurrency, size, start=number))
        last = lane[-1].batch
        planned.append([dataclasses.replace(spec, last=last) for spec in lane])
        number = last + 1
    return planned


def rejected_records(rejected: Sequence[Rejected]) -> list[ResultRecord]:
    """A failed record for each ``urls`` entry that is not a URL (its message names it)."""
    return [
        ResultRecord(
            url=entry.given,
            path=f"urls[{entry.index}]",
            outcome=Outcome.FAILED,
            error=entry.message,
            failure_kind=FailureKind.INVALID_URL,
        )
        for entry in rejected
    ]


def plan_lanes(
    s3: S3Client,
    bucket: str,
    job_id: str,
    source: UrlsSource,
    size: int,
    parent: str | None,
) -> dict[str, Any]:
    """Plan a ``urls`` job: one lane of batches per host (see the module's docstring)."""
    first: dict[str, Item] = {}
    for item in source.entries:  # a duplicate URL is dropped; the first one's meta is kept
        first.setdefault(item.url, item)
    items = list(first.values())
    concurrency = source.concurrency or DEFAULT_CONCURRENCY
    planned = lanes(job_id, items, concurrency, size)
    specs = [spec for lane in planned for spec in lane]
    refs = [LaneRef(job_id, lane[0].batch, lane[-1].batch) for lane in planned]
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        for _ in pool.map(
            lambda spec: put_json(s3, bucket, batch_key(job_id, spec.batch), spec.to_json()),
            specs,
        ):
            pass
    rejected = rejected_records(source.rejected)
    if rejected:  # a last batch, run by no lane: its results are written now
        bad = tuple(Item(url=r.url, key="", path=r.path) for r in rejected)
        specs.append(BatchSpec(job_id, len(specs), bad, concurrency))
        write_results(s3, bucket, job_id, len(specs) - 1, rejected)
    key = manifest_key(job_id)
    batches = put_json_array(s3, bucket, key, (spec.to_json() for spec in specs))
    map_key = lanes_key(job_id)
    put_json_array(s3, bucket, map_key, (ref.to_json() for ref in refs))
    return {
        "jobId": job_id,
        "bucket": bucket,
        "manifestKey": key,
        "mapKey": map_key,
        "expected": len(items) + len(rejected),
        "duplicates": len(source.entries) - len(items),
        "batches": batches,
        "lanes": len(refs),
        "rejected": len(rejected),
        "batchSize": size,
        "concurrency": concurrency,
        "parent": parent,
    }
