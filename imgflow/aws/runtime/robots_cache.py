"""robots.txt answers kept in S3 for one job: each host's read once, obeyed by every batch.

The engine's `Robots` takes a `RobotsCache` (engine/robots.py). On aws it is this one, keyed
per job and origin: ``jobs/<job-id>/robots/<sha256 of origin>.json`` holds the answer's
status, its body (base64, at most the engine's `MAX_BYTES`) and when it was read. A batch
looks there first; the first batch of a host reads robots.txt and puts the answer, the
job's later batches of that host use it with no request. The engine puts only answers it
keeps (2xx, and a 4xx other than 429: allow all); a 5xx or an unreachable robots.txt is never
stored, so the next batch asks again.

Two batches of one host that start at the same moment may both read it (each puts the same
answer); a job's later batches do not. A missing object (or one the role may not read: S3
answers AccessDenied for a missing key to a role without ListBucket) or a damaged one is a
miss; a put that fails is logged and the batch goes on (the next batch asks again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from imgflow.aws.client import AwsError, aws_errors
from imgflow.aws.runtime.jobs import job_prefix
from imgflow.engine.robots import MAX_BYTES, Stored

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("imgflow.etiquette")


def robots_key(job_id: str, origin: str) -> str:
    """The object that keeps `origin`'s robots.txt answer for job `job_id`."""
    digest = hashlib.sha256(origin.encode()).hexdigest()
    return f"{job_prefix(job_id)}robots/{digest}.json"


def stored_json(origin: str, stored: Stored) -> dict[str, Any]:
    """The object's content for one answer (its body capped at MAX_BYTES)."""
    return {
        "origin": origin,
        "status": stored.status,
        "body": base64.b64encode(stored.body[:MAX_BYTES]).decode("ascii"),
        "fetchedAt": stored.fetched_at,
    }


def stored_from_json(origin: str, data: Any) -> Stored | None:
    """The answer an object holds, or None when it is not one for `origin`."""
    try:
        if data["origin"] != origin:
            return None
        body = base64.b64decode(data["body"], validate=True)[:MAX_BYTES]
        return Stored(int(data["status"]), body, float(data["fetchedAt"]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


class S3RobotsCache:
    """The engine's `RobotsCache` over S3, for the batches of one job."""

    def __init__(self, s3: S3Client, bucket: str, job_id: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._job_id = job_id

    def get(self, origin: str) -> Stored | None:
        key = robots_key(self._job_id, origin)
        try:
            with aws_errors("s3:GetObject"):
                body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except AwsError:  # none yet (NoSuchKey, or AccessDenied without ListBucket)
            return None
        try:
            data = json.loads(body)
        except ValueError:
            log.warning(
                "s3://%s/%s is not a robots.txt answer; reading it again", self._bucket, key
            )
            return None
        return stored_from_json(origin, data)

    def put(self, origin: str, stored: Stored) -> None:
        key = robots_key(self._job_id, origin)
        body = json.dumps(stored_json(origin, stored)).encode()
        try:
            with aws_errors("s3:PutObject"):
                self._s3.put_object(
                    Bucket=self._bucket, Key=key, Body=body, ContentType="application/json"
                )
        except AwsError as exc:
            log.warning("robots.txt of %s not kept for the job's next batches: %s", origin, exc)
