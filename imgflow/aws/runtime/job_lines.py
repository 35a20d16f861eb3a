"""The job object jobs/<job-id>/job.json written one entry per line, and read as a stream.

The CLI uploads a job as JSON the original format reads (``{"baseUrl": ..., "lambdaConcur":
..., "resourcePaths": [...]}``, or ``{"lambdaConcur": ..., "urls": [...]}``), laid out so
that a reader needs no JSON parser for the whole document::

    {"baseUrl":"https://example.com/","lambdaConcur":5,"resourcePaths":[
    "a.jpg"
    ,"b.jpg"
    ]}

The first line is the body's other fields and the list's name; each entry is a line of its
own (compact JSON never holds a newline); the last line closes the list and the body. The
plan step reads it with `open_job`: the header at once, the entries as they arrive, so ten
million paths never sit in memory. Any other object (a body written in one line, an older
job.json) is read whole, as before.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import aws_errors
from imgflow.aws.runtime.jobs import SPOOL_BYTES
from imgflow.errors import JobError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LIST_FIELDS = ("resourcePaths", "urls")
READ_CHUNK = 1 << 18  # bytes read from S3 at a time (its lines are split at once)
_END = b"]}"


@dataclass
class JobStream:
    """A job object read line by line: its other fields now, its list's entries as read."""

    header: dict[str, Any]
    field: str
    entries: Iterator[Any]
    size: int  # the object's length in bytes
    close: Callable[[], None]  # drops the rest of the object (a reader of the header only)


def job_lines(body: dict[str, Any]) -> Iterator[bytes]:
    """The lines of `body` as the CLI uploads it (each with its newline)."""
    field = next((name for name in LIST_FIELDS if name in body), None)
    if field is None:
        yield json.dumps(body, separators=(",", ":")).encode() + b"\n"
        return
    header = {k: v for k, v in body.items() if k != field}
    head = json.dumps(header, separators=(",", ":"))[:-1]
    yield f"{head}{',' if header else ''}{json.dumps(field)}:[\n".encode()
    for number, entry in enumerate(body[field]):
        comma = "," if number else ""
        yield f"{comma}{json.dumps(entry, separators=(',', ':'))}\n".encode()
    yield _END + b"\n"


def put_job(s3: S3Client, bucket: str, key: str, body: dict[str, Any]) -> None:
    """Upload `body` one entry per line (spooled to disk past SPOOL_BYTES)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        for line in job_lines(body):
            spool.write(line)
        spool.seek(0)
        with aws_errors("s3:PutObject"):
            s3.put_object(Bucket=bucket, Key=key, Body=spool, ContentType="application/json")


def _list_field(first: bytes) -> str | None:
    """The list a job object's first line opens, when the object is laid out in lines."""
    for name in LIST_FIELDS:
        if first.endswith(json.dumps(name).encode() + b":["):
            return name
    return None


def open_job(s3: S3Client, bucket: str, key: str, label: str) -> JobStream | str:
    """The job object `key`: a JobStream when it is written in lines, else its whole text."""
    with aws_errors("s3:GetObject"):
        found = s3.get_object(Bucket=bucket, Key=key)
    size = int(found.get("ContentLength", 0))
    lines = found["Body"].iter_lines(chunk_size=READ_CHUNK)
    first = next(lines, b"")
    field = _list_field(first)
    if field is None:
        rest = b"\n".join(lines)
        data = first + (b"\n" + rest if rest else b"")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise JobError(f"{label}: not UTF-8 text") from None
    head = first[: -len(json.dumps(field)) - 2].rstrip(b",")
    try:
        header = json.loads(head + b"}") if head != b"{" else {}
    except ValueError:
        raise JobError(f"{label}: not valid JSON (the line before {field})") from None
    if not isinstance(header, dict):
        raise JobError(f"{label}: expected a JSON object")
    return JobStream(header, field, _entries(lines, label), size, found["Body"].close)


def _entries(lines: Iterator[bytes], label: str) -> Iterator[Any]:
    for number, line in enumerate(lines, start=2):
        if line == _END:
            return
        try:
            yield json.loads(line.removeprefix(b","))
        except ValueError:
            raise JobError(f"{label}: not valid JSON at line {number}") from None
    raise JobError(f"{label}: ends before its list is closed")
