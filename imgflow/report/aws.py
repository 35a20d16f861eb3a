"""Reports of aws executions: the job's result objects, images linked by presigned S3 URLs.

The records are read from `jobs/<job-id>/results/` twice, streamed: once for the counts
and failures, once for the gallery, so memory stays flat. Each stored image gets a GET
URL presigned for `link_seconds` (at most 7 days, SigV4's limit; sooner if the
credentials are temporary), stated on the page; with `embed_thumbnails` each image is also
read once to embed its thumbnail, so the thumbnails outlive the links. A sample in a
batch's WebDataset shard has no object to link: its thumbnail is embedded from its bytes,
read with one ranged GET of the shard (imgflow/report/shard_images.py).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imgflow.aws.client import Aws, aws_errors
from imgflow.aws.job import job_status
from imgflow.aws.runtime.jobs import get_json, job_key
from imgflow.aws.runtime.shards import SHARDS_PREFIX
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.errors import BackendError, UsageError
from imgflow.report import thumbs
from imgflow.report.model import (
    Failure,
    Gallery,
    GalleryItem,
    HostCount,
    Report,
    group_exclusions,
    group_failures,
)
from imgflow.report.page import PAGE_SIZE, human_seconds, write_file
from imgflow.report.shard_images import ShardImages

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_LINK_SECONDS = 7 * 24 * 3600


class _Tally:
    """Bytes and per-host counts gathered while the failures are grouped (one pass)."""

    def __init__(self) -> None:
        self.stored_bytes = 0
        self.skipped_bytes = 0
        self.hosts: dict[str, HostCount] = {}

    def failures(self, records: Iterable[ResultRecord]) -> Iterator[Failure]:
        for record in records:
            host = urlsplit(record.url).netloc or "?"
            entry = self.hosts.setdefault(host, HostCount(host))
            entry.total += 1
            if record.outcome is Outcome.FAILED:
                entry.failed += 1
                yield Failure(
                    record.url, record.status_code, record.error or "", record.failure_kind
                )
            elif record.outcome is Outcome.STORED:
                self.stored_bytes += record.bytes or 0
            elif record.outcome is not Outcome.EXCLUDED:
                self.skipped_bytes += record.bytes or 0

    def busiest(self) -> list[HostCount]:
        return sorted(self.hosts.values(), key=lambda h: (-h.total, h.host))


def _thumbnail(s3: S3Client, bucket: str, key: str) -> thumbs.Thumbnail:
    with aws_errors("s3:GetObject"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return thumbs.make_thumbnail(io.BytesIO(body), thumbs.EMBED_SIZE, 70)


def _shard_item(shards: ShardImages, record: ResultRecord, pillow: bool) -> GalleryItem:
    """A sample in a batch's shard: unlinked (no object of its own), its thumbnail embedded
    from its bytes, read with one ranged GET of the shard (with Pillow)."""
    assert record.key is not None
    size = record.bytes or 0
    data = shards.read(record.key, record.url) if pillow else None
    if data is None:
        return GalleryItem(record.key, size, url="")
    made = thumbs.make_thumbnail(io.BytesIO(data), thumbs.EMBED_SIZE, 70)
    return GalleryItem(record.key, size, made.width, made.height, thumbs.data_uri(made), "")


def aws_report(
    aws: Aws,
    bucket: str,
    prefix: str,
    execution_arn: str,
    link_seconds: int = MAX_LINK_SECONDS,
    embed_thumbnails: bool = False,
) -> Report:
    """The report of an execution; its gallery reads the result objects again when written."""
    if not 1 <= link_seconds <= MAX_LINK_SECONDS:
        raise UsageError(f"--link-hours: links last at most {MAX_LINK_SECONDS // 3600} hours")
    status = job_status(aws, bucket, execution_arn)
    with aws_errors("states:DescribeExecution"):
        execution = aws.stepfunctions().describe_execution(executionArn=execution_arn)
    started = execution["startDate"].timestamp()
    stopped = execution.get("stopDate")
    try:
        base_url = str(get_json(aws.s3(), bucket, job_key(status.job_id)).get("baseUrl", ""))
    except BackendError:
        base_url = ""
    tally = _Tally()
    groups = group_failures(tally.failures(status.records))
    excluded = (  # one more read of the result objects, only when the sites kept some out
        group_exclusions(
            (r.url, r.error or "") for r in status.records if r.outcome is Outcome.EXCLUDED
        )
        if status.summary.excluded
        else []
    )
    s3 = aws.s3()

    def sign(key: str) -> str:
        return aws.presigned_get(bucket, key, link_seconds)

    expires = time.time() + link_seconds
    pillow = thumbs.pillow_available()
    embed = embed_thumbnails and pillow
    shards = ShardImages(s3, bucket)

    def items() -> Iterator[GalleryItem]:
        kept = (r for r in status.records if r.outcome is not Outcome.FAILED and r.key is not None)

        def item(record: ResultRecord) -> GalleryItem:
            assert record.key is not None
            if record.key.startswith(SHARDS_PREFIX):  # in a batch's shard: no object to link
                return _shard_item(shards, record, pillow)
            # the download step records the object's key; older records, the key under prefix
            key = record.key if record.key.startswith(prefix) else prefix + record.key
            if not embed:
                return GalleryItem(record.key, record.bytes or 0, url=sign(key))
            made = _thumbnail(s3, bucket, key)
            uri = thumbs.data_uri(made)
            size = record.bytes or 0
            return GalleryItem(record.key, size, made.width, made.height, uri, sign(key))

        yield from thumbs.in_threads(item, kept, workers=8)

    origin = urlsplit(sign(prefix + "x"))
    link = (
        f"Each image links to its S3 object by a presigned URL valid for "
        f"{human_seconds(link_seconds)}, until "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires))} (sooner if the "
        "credentials that signed it expire); then run imgflow report again."
    )
    notes = [link]
    if embed:
        notes.append("The thumbnails are inside this page: they stay when the links expire.")
    elif embed_thumbnails:
        notes.append("--embed-thumbnails needs Pillow (pip install 'imgflow[report]').")
    else:
        notes.append("The gallery shows the originals, scaled by the browser.")
    gallery = Gallery(
        count=status.summary.stored + status.summary.skipped,
        items=items,
        notes=tuple(notes),
        img_sources=(f"{origin.scheme}://{origin.netloc}", "data:"),
    )
    run_notes: tuple[str, ...] = ()
    if status.running:
        run_notes = ("This execution is still running: the counts are those so far.",)
    return Report(
        run_id=status.job_id,
        backend="aws",
        base_url=base_url,
        state=status.status.lower(),
        started_at=started,
        finished_at=None if stopped is None else stopped.timestamp(),
        summary=status.summary,
        pending=0,
        duplicates=status.duplicates,
        stored_bytes=tally.stored_bytes,
        skipped_bytes=tally.skipped_bytes,
        timeline=None,
        hosts=tally.busiest(),
        failures=groups,
        excluded=excluded,
        retry_command=f"imgflow retry {execution_arn}",
        gallery=gallery,
        notes=run_notes,
    )


def default_output(job_id: str) -> Path:
    """Where an execution's report goes unless told otherwise."""
    return Path(f"report-{job_id}.html")


def write_aws(
    aws: Aws,
    bucket: str,
    prefix: str,
    execution_arn: str,
    output: Path | None = None,
    *,
    link_seconds: int = MAX_LINK_SECONDS,
    embed_thumbnails: bool = False,
    page_size: int | None = None,
) -> Path:
    """Write an execution's report; the file written."""
    report = aws_report(aws, bucket, prefix, execution_arn, link_seconds, embed_thumbnails)
    target = (output or default_output(report.run_id)).absolute()
    return write_file(report, target, page_size or PAGE_SIZE)
