"""The DynamoDB index (partition key ``url``): batched reads and writes with retries.

BatchWriteItem takes 25 items and BatchGetItem 100 keys per call; either may hand back
unprocessed items under throttling, which are retried with backoff until done or until
`max_rounds` is spent (then BackendError: the batch's records are still written to S3).

DynamoDB refuses a partition key value over 2,048 bytes (and an item over 400 KB), and
inside BatchWriteItem one refused item fails the whole request. A URL whose UTF-8 form is
longer than `MAX_KEY_BYTES` is keyed by ``sha256:<hex of the URL>`` with the URL itself in
the ``fullUrl`` attribute (`index_key`; lookups follow the same rule). A chunk DynamoDB
refuses is written again one row at a time, so a row that cannot be written fails only
its own item (`record` returns those URLs).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import AwsError, aws_errors
from imgflow.engine.plan import NO_META, Item
from imgflow.engine.ports import StoredObject, Validators
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.errors import BackendError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITE_CHUNK = 25
READ_CHUNK = 100
MAX_ROUNDS = 8
MAX_KEY_BYTES = 2048  # DynamoDB's limit for a partition key value
DIGEST_PREFIX = "sha256:"
REFUSED = "ValidationException"


def index_key(url: str) -> str:
    """The partition key of `url`'s row: the URL, or its digest when over DynamoDB's limit."""
    if len(url.encode()) <= MAX_KEY_BYTES:
        return url
    return DIGEST_PREFIX + hashlib.sha256(url.encode()).hexdigest()


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def index_item(
    record: ResultRecord,
    bucket: str,
    job_id: str,
    now: str,
    meta: Mapping[str, Any] = NO_META,
    member: str | None = None,
) -> dict[str, Any]:
    """The DynamoDB item of a stored record; its item's `meta` as a JSON string, if any;
    in a shard (`key` the shard's object), the `member` holding the image."""
    item: dict[str, Any] = {
        "url": {"S": index_key(record.url)},
        "bucket": {"S": bucket},
        "key": {"S": record.key or ""},
        "bytes": {"N": str(record.bytes or 0)},
        "sha256": {"S": record.sha256 or ""},
        "jobId": {"S": job_id},
        "storedAt": {"S": now},
    }
    if item["url"]["S"] != record.url:
        item["fullUrl"] = {"S": record.url}
    if record.content_type:
        item["contentType"] = {"S": record.content_type}
    if record.etag:  # the server's validators, for a revalidation
        item["etag"] = {"S": record.etag}
    if record.last_modified:
        item["lastModified"] = {"S": record.last_modified}
    if member is not None:
        item["member"] = {"S": member}
    if meta:
        item["meta"] = {"S": json.dumps(dict(meta), separators=(",", ":"))}
    return item


def stored_object(item: dict[str, Any]) -> StoredObject:
    """What an index item says of a stored image."""
    content_type = item.get("contentType", {}).get("S")
    validators = Validators(item.get("etag", {}).get("S"), item.get("lastModified", {}).get("S"))
    return StoredObject(
        key=item["key"]["S"],
        bytes=int(item["bytes"]["N"]),
        sha256=item["sha256"]["S"],
        content_type=content_type,
        validators=validators,
    )


class DynamoIndex:
    """The Index port over one DynamoDB table; `bucket` is recorded with every row."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        bucket: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self._db = dynamodb
        self.table = table
        self.bucket = bucket
        self._sleep = sleep
        self._max_rounds = max_rounds

    def _pause(self, round_: int) -> None:
        self._sleep(random.uniform(0, min(5.0, 0.05 * 2**round_)))

    def lookup(self, urls: Sequence[str]) -> dict[str, StoredObject]:
        """The stored objects the index knows among `urls`."""
        found: dict[str, StoredObject] = {}
        keys = {index_key(url): url for url in urls}
        for chunk in _chunks(sorted(keys), READ_CHUNK):
            request: Any = {self.table: {"Keys": [{"url": {"S": k}} for k in chunk]}}
            for round_ in range(self._max_rounds):
                with aws_errors("dynamodb:BatchGetItem"):
                    answer = self._db.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[keys[item["url"]["S"]]] = stored_object(dict(item))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._pause(round_)
            else:
                raise BackendError(f"DynamoDB kept throttling reads of table {self.table}")
        return found

    def record(
        self,
        run_id: str,
        items: Sequence[Item],
        records: Sequence[ResultRecord],
        members: Mapping[str, str] = MappingProxyType({}),
    ) -> set[str]:
        """Write index rows for the stored records, one per item in order (skipped and
        failed ones are ignored; `members`: a shard's member of each URL in one); the URLs
        whose rows DynamoDB refused."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = {
            r.url: index_item(r, self.bucket, run_id, now, item.meta, members.get(r.url))
            for item, r in zip(items, records, strict=True)
            if r.outcome is Outcome.STORED
        }
        refused: set[str] = set()
        for chunk in _chunks(list(rows.items()), WRITE_CHUNK):
            try:
                self._write([item for _, item in chunk])
            except AwsError as exc:
                if exc.code != REFUSED:
                    raise
                refused.update(self._write_one_by_one(chunk))
        return refused

    def _write_one_by_one(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
        """Write `rows` one request each; the URLs of those DynamoDB refuses."""
        refused = set()
        for url, item in rows:
            try:
                self._write([item])
            except AwsError as exc:
                if exc.code != REFUSED:
                    raise
                refused.add(url)
        return refused

    def _write(self, chunk: Sequence[dict[str, Any]]) -> None:
        """One BatchWriteItem of at most 25 rows, unprocessed ones retried."""
        request: Any = {self.table: [{"PutRequest": {"Item": item}} for item in chunk]}
        for round_ in range(self._max_rounds):
            with aws_errors("dynamodb:BatchWriteItem"):
                answer = self._db.batch_write_item(RequestItems=request)
            request = answer.get("UnprocessedItems") or {}
            if not request:
                return
            self._pause(round_)
        raise BackendError(f"DynamoDB kept throttling writes to table {self.table}")
