"""A download batch's WebDataset shard in S3 (`output.layout: webdataset` on aws).

    shards/<job-id>/<NNNNN>.tar          the batch's samples, one object
    shards/<job-id>/<NNNNN>.jsonl        beside it: its metadata rows, one a sample, with
                                         the image's `member` and the byte `offset` of its
                                         data in the tar (a ranged GET reads one image:
                                         the report's thumbnails, imgflow/report/shard_images.py)
    shards/<job-id>/<NNNNN>_stats.json   counts by outcome and failure kind, bytes, seconds

(`<NNNNN>.<part>` for a part of a batch run again at its time limit.) The name comes from
the job and the batch (and part) alone, so a batch that is retried writes its shard again
at the same key, and S3 replaces the object: a retried batch never leaves two shards.

The engine stores each image through `BatchShard` (the ObjectStore port): its bytes are
staged in memory. When the image's record comes (`add`, the batch's on_record), its
members (`<sample-key>.<ext>`, `<sample-key>.json`, with a caption `<sample-key>.txt`;
the same as a local webdataset shard, imgflow/engine/tar.py and samples.py) go to the
shard's upload, one thread sending the parts as they fill (S3ObjectWriter: a multipart
upload, parts of at least 5 MiB but the last; a shard under one part is one PutObject).
`finish` completes it: the shard appears at its key whole, or not at all (the upload is
aborted, as `abort` does on any failure of the batch). The index rows are written after,
pointing at the shard and the member (imgflow/aws/runtime/download.py). A retried batch
whose first attempt got as far as some index rows first copies those samples from the
shard it is replacing (`carry`), so every row keeps pointing at a member that is there.
"""

from __future__ import annotations

import json
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import AwsError, aws_errors
from imgflow.aws.runtime.store import MIN_PART_SIZE, S3ObjectWriter
from imgflow.engine.plan import NO_META, Item
from imgflow.engine.records import ResultRecord
from imgflow.engine.samples import extension, record_row, sample_key
from imgflow.engine.tar import BLOCK, end, member

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SHARDS_PREFIX = "shards/"
TAR_TYPE = "application/x-tar"


def shard_stem(job_id: str, batch: int, part: int = 0) -> str:
    """The key of a batch's shard without its suffix: the job's, the batch's and the part's
    own, so a retried batch's shard replaces the first one's."""
    tail = "" if part == 0 else f".{part}"
    return f"{SHARDS_PREFIX}{job_id}/{batch:05d}{tail}"


class _Staging:
    """One image's bytes, staged in memory until `commit` hands them to the shard."""

    def __init__(self, shard: BatchShard, key: str) -> None:
        self._shard = shard
        self._key = key
        self._buffer = bytearray()

    def write(self, chunk: bytes | memoryview) -> None:
        self._buffer += chunk

    def commit(self, content_type: str | None) -> None:
        self._shard.put(self._key, bytes(self._buffer), content_type)
        self._buffer = bytearray()

    def abort(self) -> None:
        self._buffer = bytearray()


class BatchShard:
    """The store a batch's images go through, and the shard they go into (see the module)."""

    inline = True  # staging is a copy in memory; the parts go up in the shard's own thread

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        stem: str,
        items: Sequence[Item],
        *,
        part_size: int = MIN_PART_SIZE,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.stem = stem
        self.key = stem + ".tar"
        self._writer = S3ObjectWriter(s3, bucket, self.key, part_size, part_size, TAR_TYPE)
        self._meta = {item.url: item.meta for item in items}
        self._staged: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._uploads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard")
        self._sent: list[Future[None]] = []
        self._offset = 0
        self._mtime = int(time.time())
        self.members: dict[str, str] = {}  # URL -> its image's member
        self.rows: list[dict[str, Any]] = []

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Stage an image (the engine's store step); it enters the shard with its record."""
        with self._lock:
            self._staged[key] = data

    def open(self, key: str) -> _Staging:
        return _Staging(self, key)

    def _send(self, chunk: bytes) -> None:
        self._offset += len(chunk)
        self._sent.append(self._uploads.submit(self._writer.write, chunk))

    def add(self, record: ResultRecord) -> None:
        """A finished item's record: a stored image's members go into the shard."""
        if not record.outcome.wrote or record.key is None:
            return
        with self._lock:
            data = self._staged.pop(record.key, None)
        if data is None:
            return
        row = record_row(record, len(data), self._meta.get(record.url, NO_META))
        stem = row["sample_key"]
        image = f"{stem}.{extension(record.content_type, record.key)}"
        at = self._offset + BLOCK  # the image's bytes, after its one header block
        chunk = member(image, data, self._mtime)
        chunk += member(f"{stem}.json", json.dumps(row, sort_keys=True).encode(), self._mtime)
        if row["caption"] is not None:
            chunk += member(f"{stem}.txt", row["caption"].encode(), self._mtime)
        self._send(chunk)
        self.members[record.url] = image
        self.rows.append({**row, "member": image, "offset": at})

    def carry(self, urls: Collection[str]) -> set[str]:
        """Copy the samples of `urls` from the shard already at this key (a first attempt of
        this batch, whose index rows point there) into this one, without fetching them
        again: the URLs carried; none when that shard cannot be read whole."""
        wanted = {sample_key(url): url for url in urls}
        found: dict[str, list[tuple[str, bytes]]] = {}
        try:
            with aws_errors("s3:GetObject"):
                body = self._s3.get_object(Bucket=self.bucket, Key=self.key)["Body"]
            with tarfile.open(fileobj=body, mode="r|") as tar:
                for info in tar:
                    stem = info.name.split(".", 1)[0]
                    read = tar.extractfile(info) if stem in wanted else None
                    if read is not None:
                        found.setdefault(stem, []).append((info.name, read.read()))
        except (AwsError, tarfile.TarError, OSError):
            return set()
        carried = set()
        for stem, members in found.items():
            rows = [json.loads(data) for name, data in members if name == f"{stem}.json"]
            images = [name for name, _ in members if not name.endswith((".json", ".txt"))]
            if not rows or not images:
                continue
            at, offset = 0, self._offset
            for name, data in members:
                if name == images[0]:
                    at = offset + BLOCK
                offset += len(member(name, data, self._mtime))
            self._send(b"".join(member(name, data, self._mtime) for name, data in members))
            self.members[wanted[stem]] = images[0]
            self.rows.append({**rows[0], "member": images[0], "offset": at})
            carried.add(wanted[stem])
        return carried

    def finish(self) -> dict[str, str]:
        """Complete the shard (nothing when no image was stored): it appears whole at its
        key, or OSError with nothing there and its upload aborted. Its members by URL."""
        if not self.members:
            self.abort()
            return {}
        try:
            self._send(end(self._offset))
            self._uploads.shutdown(wait=True)
            for sent in self._sent:
                sent.result()  # the first failed part's OSError
            self._writer.commit(TAR_TYPE)
        except BaseException:
            self.abort()
            raise
        return dict(self.members)

    def abort(self) -> None:
        """Drop the shard: its upload aborted, nothing at its key. Safe to call twice."""
        self._uploads.shutdown(wait=True, cancel_futures=True)
        self._writer.abort()

    def write_sidecars(self, records: Sequence[ResultRecord], seconds: float) -> None:
        """The metadata rows and the stats beside the shard (after it is complete)."""
        kinds = Counter(r.failure_kind.value for r in records if r.failure_kind is not None)
        stats = {
            "shard": self.key,
            "count": len(records),
            "successes": len(self.rows),
            "outcomes": dict(Counter(r.outcome.value for r in records)),
            "failure_kinds": dict(kinds),
            "bytes": sum(row["bytes"] for row in self.rows),
            "seconds": round(seconds, 3),
        }
        rows = "".join(json.dumps(row, sort_keys=True) + "\n" for row in self.rows)
        for key, body, content_type in (
            (self.stem + ".jsonl", rows.encode(), "application/x-ndjson"),
            (
                self.stem + "_stats.json",
                json.dumps(stats, sort_keys=True).encode(),
                "application/json",
            ),
        ):
            with aws_errors("s3:PutObject"):
                self._s3.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
                )
