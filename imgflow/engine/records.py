"""Result records: one per input path, the same on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What became of one input path."""

    STORED = "stored"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """The result of one input path.

    A superset of the original pipeline's ``{url, statusCode, filename}`` and
    ``{url, statusCode, message}`` records.
    """

    url: str
    path: str
    outcome: Outcome
    status_code: int | None = None
    key: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    error: str | None = None
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record in the JSON shape shared by `--output json` and the AWS result files."""
        return {
            "url": self.url,
            "path": self.path,
            "outcome": self.outcome.value,
            "statusCode": self.status_code,
            "key": self.key,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "contentType": self.content_type,
            "error": self.error,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultRecord:
        """Read a record written by `to_json`."""
        return cls(
            url=data["url"],
            path=data["path"],
            outcome=Outcome(data["outcome"]),
            status_code=data.get("statusCode"),
            key=data.get("key"),
            bytes=data.get("bytes"),
            sha256=data.get("sha256"),
            content_type=data.get("contentType"),
            error=data.get("error"),
            attempts=int(data.get("attempts") or 0),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over a run's records."""

    total: int = 0
    stored: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, outcome: Outcome) -> Summary:
        """This summary with one more record of `outcome`."""
        return Summary(
            total=self.total + 1,
            stored=self.stored + (outcome is Outcome.STORED),
            skipped=self.skipped + (outcome is Outcome.SKIPPED),
            failed=self.failed + (outcome is Outcome.FAILED),
        )

    def failed_percent(self) -> float:
        """Failed records as a percentage of all records (0 for an empty run)."""
        return 100.0 * self.failed / self.total if self.total else 0.0

    def succeeded(self, tolerate_percent: float = 0.0) -> bool:
        """True when failures stay within the tolerated percentage (none by default)."""
        if self.failed == 0:
            return True
        return tolerate_percent > 0 and self.failed_percent() <= tolerate_percent

    def to_json(self) -> dict[str, int]:
        """The summary object of `--output json`."""
        return {
            "total": self.total,
            "stored": self.stored,
            "skipped": self.skipped,
            "failed": self.failed,
        }
