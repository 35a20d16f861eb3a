"""Images inside an aws job's WebDataset shards, read one at a time for the report.

A batch's shard `shards/<job-id>/<NNNNN>.tar` has its metadata rows beside it
(`<NNNNN>.jsonl`, imgflow/aws/runtime/shards.py), each with its image's `member`, size
(`bytes`) and the byte `offset` of its data in the tar. One image is one ranged GET of the
shard (`Range: bytes=offset-(offset+bytes-1)`), so a thumbnail never downloads its whole
shard. The rows of each shard are read once (a shard's samples share them); a shard
written before offsets were recorded, or whose rows cannot be read, gives no image.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from imgflow.aws.client import AwsError, aws_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_Place = tuple[int, int]  # the offset of an image's bytes in its shard, their length


class ShardImages:
    """The images of a bucket's shards, by shard key and URL."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._places: dict[str, dict[str, _Place]] = {}
        self._lock = threading.Lock()

    def _rows(self, shard: str) -> dict[str, _Place]:
        with self._lock:
            found = self._places.get(shard)
            if found is not None:
                return found
            places: dict[str, _Place] = {}
            stem = shard[: -len(".tar")] if shard.endswith(".tar") else shard
            try:
                with aws_errors("s3:GetObject"):
                    body = self._s3.get_object(Bucket=self.bucket, Key=stem + ".jsonl")["Body"]
                    lines = body.read().splitlines()
                for line in lines:
                    row = json.loads(line)
                    if isinstance(row.get("offset"), int) and isinstance(row.get("bytes"), int):
                        places[str(row["url"])] = (row["offset"], row["bytes"])
            except (AwsError, ValueError, AttributeError):
                places = {}
            self._places[shard] = places
            return places

    def read(self, shard: str, url: str) -> bytes | None:
        """The bytes of `url`'s image in `shard` (one ranged GET); None when its place is
        not known or the bytes that came are not all of it."""
        place = self._rows(shard).get(url)
        if place is None or place[1] <= 0:
            return None
        offset, size = place
        try:
            with aws_errors("s3:GetObject"):
                got = self._s3.get_object(
                    Bucket=self.bucket, Key=shard, Range=f"bytes={offset}-{offset + size - 1}"
                )
                data = got["Body"].read()
        except AwsError:
            return None
        return data if len(data) == size else None
