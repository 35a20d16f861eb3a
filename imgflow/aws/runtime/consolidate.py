"""The consolidate step: count every batch's records, write the failures file, build the
SNS message. Batches that left no result object (a crashed child) and batches with fewer
records than items are reported failed, so totals always match the plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from imgflow.aws.runtime.download import crash_detail, lost_records
from imgflow.aws.runtime.jobs import (
    BatchSpec,
    failures_key,
    iter_json_array,
    iter_results,
    put_json,
    put_json_array,
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
    """The original's JSON array of messages when small, else a summary naming the file.

    `failures` holds the first messages: all of them when there are at most `inline_max`
    (more than `inline_max` otherwise), `summary` counts them all."""
    if len(failures) <= inline_max and summary.failed <= inline_max:
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
) -> Iterator[ResultRecord]:
    """Failed records for the items of batches that are absent or short in `seen` (the
    manifest is read as it arrives, a batch at a time)."""
    failed_map = map_failure(plan)
    for number, entry in enumerate(iter_json_array(s3, bucket, plan["manifestKey"])):
        have = seen.get(number)
        if have is not None and have >= len(entry["items"]):
            continue
        spec = BatchSpec.from_json(entry)
        if have is None:
            detail = f"no results were written for batch {number}"
            if failed_map is not None:
                detail += f"; the download map failed ({failed_map})"
            yield from lost_records(spec, detail)
        else:
            short = BatchSpec(spec.job_id, number, spec.items[have:], 0)
            yield from lost_records(short, f"batch {number} reported only {have} results")


class Tally:
    """The counts of the records passed through `failures`, and the first few failure
    messages (what the notice shows): never the whole list."""

    def __init__(self, keep: int) -> None:
        self.summary = Summary()
        self.first: list[str] = []
        self._keep = keep

    def failures(self, records: Iterable[ResultRecord]) -> Iterator[str]:
        """The failure messages of `records`, counting every record."""
        for record in records:
            self.summary = self.summary.add(record.outcome)
            if record.outcome is Outcome.FAILED:
                message = failure_message(record)
                if len(self.first) < self._keep:
                    self.first.append(message)
                yield message


def consolidate(s3: S3Client, bucket: str, plan: dict[str, Any], inline_max: int) -> dict[str, Any]:
    """Counts, allSucceeded and the SNS message of a finished Map; writes the files.

    The failure messages go to failures.json as they are read (put_json_array spools
    them), so memory does not grow with the number of failures.
    """
    job_id = str(plan["jobId"])
    # The notice needs the whole list only when it has at most inline_max messages.
    tally = Tally(max(inline_max + 1, SUMMARY_MESSAGES))
    seen: dict[int, int] = {}
    lost: list[int] = []

    def messages() -> Iterator[str]:
        for number, records in iter_results(s3, bucket, job_id):
            seen[number] = len(records)
            yield from tally.failures(records)
        lost.extend(n for n in range(int(plan["batches"])) if n not in seen)
        if lost or tally.summary.total < int(plan["expected"]):
            yield from tally.failures(_missing_records(s3, bucket, plan, seen))

    key = failures_key(job_id)
    put_json_array(s3, bucket, key, messages())
    summary = tally.summary
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
    return {**result, "message": sns_message(tally.first, summary, uri, inline_max)}
