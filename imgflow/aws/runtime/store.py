"""The S3 object store of the download Lambda (the engine's ObjectStore port)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgflow.aws.client import AwsError, aws_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Store:
    """Stores images under `prefix` in `bucket`; boto3 clients are safe to share by threads."""

    inline = False  # a network call: the engine runs puts in worker threads

    def __init__(self, s3: S3Client, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def object_key(self, key: str) -> str:
        """The S3 key of an engine key."""
        return self.prefix + key

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Store `data` (one PutObject: the object appears only when complete).

        An AWS error is raised as OSError, which the engine reports as "Store failed".
        """
        try:
            with aws_errors("s3:PutObject"):
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.object_key(key),
                    Body=data,
                    ContentType=content_type or "application/octet-stream",
                )
        except AwsError as exc:
            raise OSError(f"{exc.code}: {exc.aws_message}") from None
