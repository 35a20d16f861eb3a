"""The consolidate step: count every batch's records, write the failures file, build the
SNS message. Batches that left no result object (a crashed child) and batches with fewer
records than items are reported failed, so totals always match the plan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imgflow.aws.runtime.download import crash_detail, lost_records
from imgflow.aws.runtime.jobs import (
    BatchSpec,
    failures_key,
    get_json,
    iter_results,
    put_json,
    summary_key,
)
from imgflow.engine import messages
from imgflow.engine.records import Outcome, ResultRecord, Summary

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SNS_MAX_BYTES = 200_000  # SNS allows 256 KiB; leave room for the envelope
SUMMARY_MESSAGES = 10
SUMMARY_MESSAGE_CHARS = 500


def failure_message(record: ResultRecord) -> str:
    """The message of a failed record."""
    return record.error or messages.failure(messages.BATCH_FAILED, record.url)


def sns_message(
    failures: Sequence[str], summary: Summary, failures_uri: str, inline_max: int
) -> str:
    """The original's JSON array of messages when small, else a summary naming the file."""
    if len(failures) <= inline_max:
        text = json.dumps(failures)
        if len(text.encode()) <= SNS_MAX_BYTES:
            return text
    first = [
        m if len(m) <= SUMMARY_MESSAGE_CHARS else m[: SUMMARY_MESSAGE_CHARS - 3] + "..."
        for m in failures[:SUMMARY_MESSAGES]
    ]
    return json.dumps(
        {
            "summary": f"{summary.failed} of {summary.total} images failed to download",
            "total": summary.total,
            "failed": summary.failed,
            "firstMessages": first,
            "failuresFile": failures_uri,
        }
    )


def map_failure(plan: dict[str, Any]) -> str | None:
    """The caught error of a Download Map that failed (a child that could not start)."""
    error = plan.get("mapError")
    return None if error is None else crash_detail(error)


def _missing_records(
    s3: S3Client, bucket: str, plan: dict[str, Any], seen: dict[int, int]
) -> list[ResultRecord]:
    """Failed records for the items of batches that are absent or short in `seen`."""
    manifest = get_json(s3, bucket, plan["manifestKey"])
    failed_map = map_failure(plan)
    records: list[ResultRecord] = []
    for number, entry in enumerate(manifest):
        spec = BatchSpec.from_json(entry)
        have = seen.get(number)
        if have is None:
            detail = f"no results were written for batch {number}"
            if failed_map is not None:
                detail += f"; the download map failed ({failed_map})"
            records.extend(lost_records(spec, detail))
        elif have < len(spec.items):
            short = BatchSpec(spec.job_id, number, spec.items[have:], 0)
            records.extend(lost_records(short, f"batch {number} reported only {have} results"))
    return records


def consolidate(s3: S3Client, bucket: str, plan: dict[str, Any], inline_max: int) -> dict[str, Any]:
    """Counts, allSucceeded and the SNS message of a finished Map; writes the files."""
    job_id = str(plan["jobId"])
    summary = Summary()
    failures: list[str] = []
    seen: dict[int, int] = {}

    def count(records: Sequence[ResultRecord]) -> None:
        nonlocal summary
        for record in records:
            summary = summary.add(record.outcome)
            if record.outcome is Outcome.FAILED:
                failures.append(failure_message(record))

    for number, records in iter_results(s3, bucket, job_id):
        seen[number] = len(records)
        count(records)
    lost = [n for n in range(int(plan["batches"])) if n not in seen]
    if lost or summary.total < int(plan["expected"]):
        count(_missing_records(s3, bucket, plan, seen))
    key = failures_key(job_id)
    put_json(s3, bucket, key, failures)
    result = {
        "jobId": job_id,
        **summary.to_json(),
        "expected": int(plan["expected"]),
        "duplicates": int(plan.get("duplicates", 0)),
        "lostBatches": len(lost),
        "mapFailed": map_failure(plan),
        "parent": plan.get("parent"),
        "allSucceeded": summary.failed == 0,
        "failuresKey": key,
    }
    put_json(s3, bucket, summary_key(job_id), result)
    uri = f"s3://{bucket}/{key}"
    return {**result, "message": sns_message(failures, summary, uri, inline_max)}
