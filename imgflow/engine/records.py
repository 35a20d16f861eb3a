"""Result records: one per input path, the same on both backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from imgflow.engine.failures import FailureKind, kind_of_legacy_message


class Outcome(StrEnum):
    """What became of one input path."""

    STORED = "stored"
    SKIPPED = "skipped"
    FAILED = "failed"
    # With --refresh: the server had a newer version, stored in place of the old one...
    UPDATED = "updated"
    # ...or it confirmed the stored version (304 Not Modified): the file is kept as it is.
    UNCHANGED = "unchanged"
    # The site asked not to be fetched (robots.txt) or kept (an opt-out header): counted
    # apart from failures, never retried.
    EXCLUDED = "excluded"

    @property
    def counted_as(self) -> Outcome:
        """The outcome a summary counts this one as: an update is stored, an unchanged
        image skipped (the summary's `updated` and `unchanged` say how many of them)."""
        return _COUNTED_AS.get(self, self)

    @property
    def wrote(self) -> bool:
        """True when the run wrote the image's file (stored, or updated in place)."""
        return self is Outcome.STORED or self is Outcome.UPDATED


_COUNTED_AS = {Outcome.UPDATED: Outcome.STORED, Outcome.UNCHANGED: Outcome.SKIPPED}


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
    etag: str | None = None
    last_modified: str | None = None
    failure_kind: FailureKind | None = None  # set on every failed record
    width: int | None = None  # read from a stored image's header (None: not known)
    height: int | None = None
    meta: Mapping[str, Any] | None = None  # the source's metadata (a table's columns)

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
            "etag": self.etag,
            "lastModified": self.last_modified,
            "failureKind": self.failure_kind.value if self.failure_kind else None,
            **self._extras(),
        }

    def _extras(self) -> dict[str, Any]:
        """What only some records have: dimensions, metadata (absent rather than null,
        so records of paths keep the original's shape)."""
        extras: dict[str, Any] = {}
        if self.width is not None:
            extras["width"], extras["height"] = self.width, self.height
        if self.meta:
            extras["meta"] = dict(self.meta)
        return extras

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
            etag=data.get("etag"),
            last_modified=data.get("lastModified"),
            failure_kind=_kind(data),
            width=data.get("width"),
            height=data.get("height"),
            meta=data.get("meta"),
        )


def _kind(data: dict[str, Any]) -> FailureKind | None:
    """A record's failure kind as written, else (older files) read from its message."""
    kind = data.get("failureKind")
    if kind:
        return FailureKind(kind)
    if data.get("outcome") == Outcome.FAILED.value:
        return kind_of_legacy_message(data.get("error") or "")
    return None


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over a run's records.

    `stored` includes the `updated` images and `skipped` the `unchanged` ones (a
    revalidation's outcomes), so total = stored + skipped + failed + excluded always.
    """

    total: int = 0
    stored: int = 0
    skipped: int = 0
    failed: int = 0
    updated: int = 0
    unchanged: int = 0
    excluded: int = 0  # kept out by the site's robots.txt or opt-out headers

    def add(self, outcome: Outcome) -> Summary:
        """This summary with one more record of `outcome`."""
        counted = outcome.counted_as
        return Summary(
            total=self.total + 1,
            stored=self.stored + (counted is Outcome.STORED),
            skipped=self.skipped + (counted is Outcome.SKIPPED),
            failed=self.failed + (counted is Outcome.FAILED),
            updated=self.updated + (outcome is Outcome.UPDATED),
            unchanged=self.unchanged + (outcome is Outcome.UNCHANGED),
            excluded=self.excluded + (outcome is Outcome.EXCLUDED),
        )

    @classmethod
    def of_counts(cls, counts: Mapping[str, int]) -> Summary:
        """The summary of records counted by outcome value (other keys, e.g. pending,
        are left out)."""
        get = counts.get
        updated, unchanged = get(Outcome.UPDATED.value, 0), get(Outcome.UNCHANGED.value, 0)
        stored = get(Outcome.STORED.value, 0) + updated
        skipped = get(Outcome.SKIPPED.value, 0) + unchanged
        failed = get(Outcome.FAILED.value, 0)
        excluded = get(Outcome.EXCLUDED.value, 0)
        total = stored + skipped + failed + excluded
        return cls(total, stored, skipped, failed, updated, unchanged, excluded)

    def __add__(self, other: Summary) -> Summary:
        return Summary(
            self.total + other.total,
            self.stored + other.stored,
            self.skipped + other.skipped,
            self.failed + other.failed,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.excluded + other.excluded,
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
        """The summary object of `--output json` (`updated` and `unchanged` after a
        revalidation only, `excluded` when the sites kept any image out: other runs keep
        the four counts they always had)."""
        data = {
            "total": self.total,
            "stored": self.stored,
            "skipped": self.skipped,
            "failed": self.failed,
        }
        if self.updated or self.unchanged:
            data.update(updated=self.updated, unchanged=self.unchanged)
        if self.excluded:
            data["excluded"] = self.excluded
        return data
