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

import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imgflow.aws.runtime.job_lines import JobStream, open_job
from imgflow.aws.runtime.jobs import (
    JOBS_PREFIX,
    BatchSpec,
    item_json,
    lanes_key,
    manifest_key,
    put_json_array,
    write_results,
)
from imgflow.aws.runtime.lane_plan import (
    WRITE_THREADS,
    LaneWriter,
    UniqueItems,
    by_host,
    entries_of,
    stream_concurrency,
)
from imgflow.aws.runtime.unique import UniquePaths
from imgflow.engine.failures import FailureKind
from imgflow.engine.job import (
    lambda_concur,
    normalize_path,
    validate_base_url,
    validate_concurrency,
)
from imgflow.engine.plan import Item, item_for
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.errors import JobError
from imgflow.sources.job_json import (
    URLS_FIELD,
    Rejected,
    UrlsSource,
    parse_job_document,
    parse_job_text,
)
from imgflow.sources.paths import PathsSource

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_CONCURRENCY = 5  # requests in flight per batch when the job names none
DEFAULT_BATCH_SIZE = 250  # images per download Lambda invocation
MAX_BATCH_SIZE = 5000
# A child execution's input (one manifest item) stays under this, well below Step Functions'
# 256 KiB, leaving room for the error a caught crash adds to the child's state.
MAX_CHILD_INPUT_BYTES = 200_000
# A job object past this many bytes is deduplicated through disk, one partition per this
# many bytes (unique.py): a partition's paths are what the plan holds in memory at once.
PARTITION_BYTES = 4 * 1024 * 1024


def manifest_location(manifest: Any, bucket: str) -> tuple[str, str]:
    """(bucket, key) of a manifest reference: ``{"bucket", "key"}`` or ``"s3://bucket/key"``
    (the HTTP API's form); only the deployment's own bucket."""
    if isinstance(manifest, str) and manifest.startswith("s3://"):
        named, _, key = manifest.removeprefix("s3://").partition("/")
    elif isinstance(manifest, dict) and {"bucket", "key"} <= set(manifest):
        named, key = str(manifest["bucket"]), str(manifest["key"])
    else:
        raise JobError("job: manifest must name a bucket and a key, or be s3://<bucket>/<key>")
    if named != bucket or not key.startswith(JOBS_PREFIX):
        raise JobError(
            f"job: manifest must be an object under s3://{bucket}/{JOBS_PREFIX} "
            f"(the deployment's bucket), got s3://{named}/{key}"
        )
    return named, key


def open_request(
    s3: S3Client, bucket: str, request: dict[str, Any]
) -> JobStream | PathsSource | UrlsSource:
    """The job of an execution input: streamed from a manifest written in lines, or parsed."""
    manifest = request.get("manifest")
    if manifest is None:
        body = {k: v for k, v in request.items() if k not in ("batchSize", "parent")}
        return parse_job_document(body, "job")
    named, key = manifest_location(manifest, bucket)
    label = f"s3://{named}/{key}"
    opened = open_job(s3, named, key, label)
    if isinstance(opened, str):
        return parse_job_text(opened, label)
    return opened


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


def base_url_of(s3: S3Client, bucket: str, request: dict[str, Any]) -> str | None:
    """The base URL of an execution input's job (None for a job of full URLs); a streamed
    job's entries are not read."""
    opened = open_request(s3, bucket, request)
    if isinstance(opened, JobStream):
        opened.close()
        return None if opened.field == URLS_FIELD else stream_header(opened.header, "job")[0]
    return opened.base_url


def partitions_for(size: int) -> int:
    """How many partitions deduplicating a job object of `size` bytes takes (unique.py)."""
    return max(1, -(-size // PARTITION_BYTES))


def plan_job(s3: S3Client, bucket: str, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Write jobs/<job_id>/batches.json; return what the Map and consolidate need.

    A job uploaded in lines is read as it arrives; its paths are deduplicated through disk
    (unique.py) and its items made and written batch by batch: memory stays flat in the
    number of paths.
    """
    size = batch_size_of(request)
    opened = open_request(s3, bucket, request)
    if isinstance(opened, UrlsSource) or (
        isinstance(opened, JobStream) and opened.field == URLS_FIELD
    ):
        return plan_lanes(s3, bucket, job_id, opened, size, request.get("parent"))
    if isinstance(opened, JobStream):
        label = f"job {job_id}"
        base_url, concurrency = stream_header(opened.header, label)
        unique = UniquePaths(stream_paths(opened.entries, label), partitions_for(opened.size))
    else:
        base_url, concurrency = str(opened.base_url), opened.concurrency
        unique = UniquePaths(opened.paths())
    concurrency = concurrency or DEFAULT_CONCURRENCY
    items = (item_for(base_url, path) for path in unique)
    specs = split_batches(job_id, items, concurrency, size)
    key = manifest_key(job_id)
    batches = put_json_array(s3, bucket, key, (spec.to_json() for spec in specs))
    if not unique.unique:
        raise JobError(f"job {job_id}: resourcePaths is empty")
    return {
        "jobId": job_id,
        "bucket": bucket,
        "manifestKey": key,
        "mapKey": key,
        "expected": unique.unique,
        "duplicates": unique.total - unique.unique,
        "batches": batches,
        "batchSize": size,
        "concurrency": concurrency,
        "parent": request.get("parent"),
    }


def stream_header(header: dict[str, Any], label: str) -> tuple[str, int | None]:
    """(base URL, lambdaConcur) of a streamed job's header, checked as the body's are."""
    unknown = sorted(set(header) - {"baseUrl", "lambdaConcur"})
    if unknown:
        raise JobError(f"{label}: unknown field {unknown[0]!r}")
    base = header.get("baseUrl")
    if not isinstance(base, str):
        raise JobError(f"{label}: baseUrl must be a string")
    return validate_base_url(base), lambda_concur(header.get("lambdaConcur"), label)


def stream_paths(entries: Iterable[Any], label: str) -> Iterator[str]:
    """The normalised paths of a streamed job, each checked as the body's are."""
    for index, path in enumerate(entries):
        if not isinstance(path, str):
            raise JobError(f"{label}: resourcePaths[{index}] must be a string, got {path!r}")
        yield normalize_path(path, f"{label} resourcePaths[{index}]")


def lanes(
    job_id: str, items: Iterable[Item], concurrency: int, size: int, partitions: int = 1
) -> Iterator[Iterator[BatchSpec]]:
    """Each host's batches (one lane per host, in order of the host's first item),
    numbered consecutively across lanes; every batch holds one host's items. Each lane is
    read whole before the next (LaneWriter sets every spec's `last`)."""
    after = [0]  # the next batch number

    def lane(host_items: Iterator[Item]) -> Iterator[BatchSpec]:
        for spec in split_batches(job_id, host_items, concurrency, size, start=after[0]):
            after[0] = spec.batch + 1
            yield spec

    for host_items in by_host(items, host_of, partitions):
        yield lane(host_items)


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
    source: UrlsSource | JobStream,
    size: int,
    parent: str | None,
) -> dict[str, Any]:
    """Plan a ``urls`` job: one lane of batches per host (see the module's docstring and
    lane_plan.py: streamed, through /tmp when the job object is large)."""
    if isinstance(source, JobStream):
        label = f"job {job_id}"
        concurrency = stream_concurrency(source.header, label) or DEFAULT_CONCURRENCY
        partitions = partitions_for(source.size)
        unique = UniqueItems(entries_of(source.entries, label), partitions)
    else:
        concurrency = source.concurrency or DEFAULT_CONCURRENCY
        partitions = 1
        unique = UniqueItems([*source.entries, *source.rejected], partitions)
    writer = LaneWriter(s3, bucket, job_id)
    rejected: list[ResultRecord] = []

    def manifest_rows() -> Iterator[dict[str, Any]]:
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            yield from writer.rows(pool, lanes(job_id, unique, concurrency, size, partitions))
        rejected.extend(rejected_records(sorted(unique.rejected, key=lambda r: r.index)))
        if rejected:  # a last batch, run by no lane: its results are written now
            number = writer.refs[-1].last + 1 if writer.refs else 0
            bad = tuple(Item(url=r.url, key="", path=r.path) for r in rejected)
            write_results(s3, bucket, job_id, number, rejected)
            yield BatchSpec(job_id, number, bad, concurrency).to_json()

    key = manifest_key(job_id)
    batches = put_json_array(s3, bucket, key, manifest_rows())
    map_key = lanes_key(job_id)
    put_json_array(s3, bucket, map_key, (ref.to_json() for ref in writer.refs))
    return {
        "jobId": job_id,
        "bucket": bucket,
        "manifestKey": key,
        "mapKey": map_key,
        "expected": unique.unique + len(rejected),
        "duplicates": unique.total - unique.unique,
        "batches": batches,
        "lanes": len(writer.refs),
        "rejected": len(rejected),
        "batchSize": size,
        "concurrency": concurrency,
        "parent": parent,
    }
