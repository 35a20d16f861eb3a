"""What a report shows, independent of the backend that produced the run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

from imgflow.engine.failures import FailureKind
from imgflow.engine.records import Summary
from imgflow.report.classify import FailureClass, classify

FIRST_FAILURES = 20  # the URLs and messages listed per failure group


@dataclass(frozen=True)
class Failure:
    """One failed path, as listed in its group."""

    url: str
    status: int | None
    message: str
    kind: FailureKind | None = None  # None for an old record: its message tells


@dataclass
class FailureGroup:
    """The failures of one class: how many, and the first few."""

    kind: FailureClass
    count: int = 0
    first: list[Failure] = field(default_factory=list)


def group_failures(failures: Iterable[Failure], keep: int = FIRST_FAILURES) -> list[FailureGroup]:
    """Failures grouped by class, largest group first; memory is `keep` per group."""
    groups: dict[str, FailureGroup] = {}
    for failure in failures:
        kind = classify(failure.kind, failure.message, failure.status)
        group = groups.get(kind.slug)
        if group is None:
            group = groups[kind.slug] = FailureGroup(kind)
        group.count += 1
        if len(group.first) < keep:
            group.first.append(failure)
    return sorted(groups.values(), key=lambda g: -g.count)


@dataclass
class ExclusionGroup:
    """Images one host kept out for one reason (robots.txt, an opt-out header)."""

    host: str
    reason: str  # "Disallowed by robots.txt", "Opted out (X-Robots-Tag: noai)"
    count: int = 0
    first: list[str] = field(default_factory=list)  # the first few URLs


def group_exclusions(
    rows: Iterable[tuple[str, str]], keep: int = FIRST_FAILURES
) -> list[ExclusionGroup]:
    """(url, message) of excluded records grouped by host and reason, largest first."""
    groups: dict[tuple[str, str], ExclusionGroup] = {}
    for url, message in rows:
        host = urlsplit(url).netloc.lower()
        reason = message.split(f": {url}", 1)[0] if f": {url}" in message else message
        group = groups.get((host, reason))
        if group is None:
            group = groups[host, reason] = ExclusionGroup(host, reason)
        group.count += 1
        if len(group.first) < keep:
            group.first.append(url)
    return sorted(groups.values(), key=lambda g: (-g.count, g.host, g.reason))


@dataclass
class HostCount:
    """Records of one host."""

    host: str
    total: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Timeline:
    """Finished records per time slot since the run started: the rate chart's data."""

    slot_seconds: float
    done: list[int]
    failed: list[int]


class GalleryItem(NamedTuple):
    """One stored image: its key, size, dimensions (0 when unknown) and where to see it.

    `thumb` is a thumbnail number in the thumbnail folder, an embedded ``data:`` URI, or
    None (the original is shown, scaled by the browser); `url` is the original's address
    when it is not the gallery's base plus the key (presigned S3 links).
    """

    key: str
    bytes: int
    width: int = 0
    height: int = 0
    thumb: int | str | None = None
    url: str | None = None
    caption: str | None = None  # the source's caption (a URL table's column)


@dataclass(frozen=True)
class Gallery:
    """Where the gallery's images are and how they are shown."""

    count: int
    items: Callable[[], Iterator[GalleryItem]]
    base: str = ""  # prefix of an original's address: base + the key, segment-quoted
    thumb_base: str = ""  # prefix of a thumbnail file: thumb_base + <n // 1000>/<n>.<ext>
    thumb_ext: str = "webp"
    notes: tuple[str, ...] = ()
    img_sources: tuple[str, ...] = ("'self'", "file:", "data:")  # the page's CSP img-src


@dataclass(frozen=True)
class Report:
    """Everything a report page shows."""

    run_id: str
    backend: str
    base_url: str
    state: str
    started_at: float | None
    finished_at: float | None
    summary: Summary
    pending: int
    duplicates: int
    stored_bytes: int
    skipped_bytes: int
    timeline: Timeline | None
    hosts: list[HostCount]
    failures: list[FailureGroup]
    retry_command: str
    gallery: Gallery
    notes: tuple[str, ...] = ()
    excluded: list[ExclusionGroup] = field(default_factory=list)  # robots.txt, opt-outs
