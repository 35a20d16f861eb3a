"""The S3 object store of the download Lambda (the engine's ObjectStore port).

`put` stores a whole image with one PutObject. `open` returns a writer for an image that
streams in: chunks are buffered up to `threshold` bytes; an image that stays below it is
stored with one PutObject at `commit`, a larger one goes up as a multipart upload (parts of
`part_size` bytes, at least S3's 5 MiB, except the last) completed at `commit`. S3 shows an
object at its key only once PutObject or CompleteMultipartUpload succeeds, so no partial
image is ever visible; `abort` (or any error) aborts the upload, leaving nothing. (A commit
after a multipart upload whose content type differs from the one the first bytes showed sets
it with an in-place CopyObject: the object is whole from the start, only its type changes.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgflow.aws.client import AwsError, aws_errors
from imgflow.engine.sniff import SNIFF_BYTES, sniff

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part (all but the last)
DEFAULT_THRESHOLD = 8 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _os_error(exc: AwsError) -> OSError:
    """An AWS error as the OSError the engine reports as "Store failed"."""
    return OSError(f"{exc.code}: {exc.aws_message}")


class S3ObjectWriter:
    """One object being written: single PutObject below the threshold, else multipart.

    S3 fixes an object's Content-Type when the multipart upload is created, before commit
    names it: the upload is created with the type the first bytes show (engine.sniff); a
    commit naming another type sets it with an in-place CopyObject once the whole object
    is there (rare: the engine accepts only bodies whose bytes show an image).
    """

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        threshold: int,
        part_size: int,
        content_type: str | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._threshold = max(threshold, part_size)
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._fixed_type = content_type  # known from the start (a shard), else sniffed
        self._upload_type = DEFAULT_CONTENT_TYPE
        self._parts: list[CompletedPartTypeDef] = []
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"writer for {self._key} is already committed or aborted")

    def _start(self) -> None:
        self._upload_type = (
            self._fixed_type or sniff(bytes(self._buffer[:SNIFF_BYTES])) or DEFAULT_CONTENT_TYPE
        )
        with aws_errors("s3:CreateMultipartUpload"):
            answer = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._upload_type
            )
        self._upload_id = answer["UploadId"]

    def _send_parts(self, final: bool) -> None:
        """Send whole parts from the buffer (and, when `final`, the rest as the last part)."""
        if self._upload_id is None:
            self._start()
        assert self._upload_id is not None
        while len(self._buffer) >= self._part_size or (final and self._buffer):
            size = min(self._part_size, len(self._buffer))
            number = len(self._parts) + 1
            with aws_errors("s3:UploadPart"):
                answer = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=bytes(self._buffer[:size]),
                )
            self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
            del self._buffer[:size]

    def write(self, chunk: bytes | memoryview) -> None:
        """Add `chunk`; past the threshold, full parts go up as they fill."""
        self._check_open()
        self._buffer += chunk
        if self._upload_id is None and len(self._buffer) <= self._threshold:
            return
        try:
            self._send_parts(final=False)
        except AwsError as exc:
            self.abort()
            raise _os_error(exc) from None

    def _put_whole(self, content_type: str) -> None:
        with aws_errors("s3:PutObject"):
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=bytes(self._buffer),
                ContentType=content_type,
            )

    def _complete(self, content_type: str) -> None:
        self._send_parts(final=True)
        assert self._upload_id is not None
        with aws_errors("s3:CompleteMultipartUpload"):
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._upload_id = None
        if content_type != self._upload_type:
            with aws_errors("s3:CopyObject"):
                self._s3.copy_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    CopySource={"Bucket": self._bucket, "Key": self._key},
                    ContentType=content_type,
                    MetadataDirective="REPLACE",
                )

    def commit(self, content_type: str | None) -> None:
        """Publish the object at its key, whole, or raise OSError with nothing published."""
        self._check_open()
        try:
            if self._upload_id is None:
                self._put_whole(content_type or DEFAULT_CONTENT_TYPE)
            else:
                self._complete(content_type or self._upload_type)
        except AwsError as exc:
            self.abort()
            raise _os_error(exc) from None
        self._closed = True
        self._buffer = bytearray()

    def abort(self) -> None:
        """Drop what was written: nothing appears at the key. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            with aws_errors("s3:AbortMultipartUpload"):
                self._s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=upload_id
                )
        except AwsError:
            pass  # its parts stay until an AbortIncompleteMultipartUpload lifecycle rule


class S3Store:
    """Stores images under `prefix` in `bucket`; boto3 clients are safe to share by threads."""

    inline = False  # a network call: the engine runs puts in worker threads

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        prefix: str,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        part_size: int = MIN_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size: S3 parts are at least {MIN_PART_SIZE} bytes")
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.threshold = threshold
        self.part_size = part_size

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
                    ContentType=content_type or DEFAULT_CONTENT_TYPE,
                )
        except AwsError as exc:
            raise _os_error(exc) from None

    def open(self, key: str) -> S3ObjectWriter:
        """A writer that publishes the object at `key` only when committed."""
        key = self.object_key(key)
        return S3ObjectWriter(self._s3, self.bucket, key, self.threshold, self.part_size)
