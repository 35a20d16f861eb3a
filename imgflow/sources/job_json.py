"""The original pipeline's job body as a source: ``{"baseUrl", "resourcePaths",
"lambdaConcur"}``, validated by `engine/job.py` (the same checks as the aws backend and
`imgflow serve`), its paths held in memory as the body itself is.

A body may instead carry ``"urls"``: full http(s) URLs from any number of hosts, each a
string or an object ``{"url": ..., <metadata fields>}`` (every field but ``url`` is the
item's metadata). ``urls`` and ``baseUrl`` exclude each other; ``resourcePaths`` goes with
``baseUrl`` only. A bad entry (not a URL, another scheme, no host, too long) does not
refuse the body: it is rejected on its own, named by its index (``urls[3]: ...``), as a
table's bad row is named by its line, and the others run. `parse_job_document` is the one
parser of both forms (`imgflow serve` and the aws plan step use it too).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgflow.engine.job import (
    full_url,
    job_from_document,
    lambda_concur,
    load_json,
    parse_job_json,
)
from imgflow.engine.keys import key_for
from imgflow.engine.plan import NO_META, Item, meta_view
from imgflow.errors import JobError
from imgflow.sources.paths import PathsSource

KIND = "job"
URLS_KIND = "urls"
URLS_FIELD = "urls"
_URL_FIELDS = frozenset({URLS_FIELD, "lambdaConcur"})


@dataclass(frozen=True)
class Rejected:
    """A ``urls`` entry that is not a URL imgflow can fetch: its index, what it held, why."""

    index: int
    given: str
    message: str
    entry: Any = None  # the entry as given (what `imgflow serve` keeps for its run)

    def item(self) -> Item:
        """The entry as an item that is never fetched: planned as failed (``invalid-url``),
        named by its index, as a table's bad row is by its line."""
        where = f"{URLS_FIELD}[{self.index}]"
        return Item(url=self.given.strip() or where, key="", path=where, problem=self.message)


@dataclass(frozen=True)
class UrlsSource:
    """The items of a job's ``urls`` list, with their metadata, from any number of hosts."""

    entries: tuple[Item, ...]
    rejected: tuple[Rejected, ...] = ()
    concurrency: int | None = None
    file: str | None = None
    base_url: str | None = field(default=None, init=False)

    @property
    def count(self) -> int:
        """How many entries the list had (a rejected one is an item that fails)."""
        return len(self.entries) + len(self.rejected)

    def items(self) -> Iterator[Item]:
        """Every entry's item in the order given, a rejected entry's failing unfetched."""
        for entry in self._in_order():
            yield entry.item() if isinstance(entry, Rejected) else entry

    def stored(self) -> list[Any]:
        """The ``urls`` entries to keep and parse again, in order: each item's entry, a
        rejected entry as it was given (so it is rejected again, with the same message)."""
        return [e.entry if isinstance(e, Rejected) else url_entry(e) for e in self._in_order()]

    def _in_order(self) -> Iterator[Item | Rejected]:
        bad = {entry.index: entry for entry in self.rejected}
        good = iter(self.entries)
        for index in range(self.count):
            yield bad.get(index) or next(good)

    def describe(self) -> dict[str, Any]:
        """``{"kind": "urls", "file", "rejected"}``."""
        return {"kind": URLS_KIND, "file": self.file, "rejected": len(self.rejected)}

    def cleanup(self) -> None:
        """Nothing to remove: the body is in memory."""

    def to_body(self) -> dict[str, Any]:
        """The job body of these items (``urls`` as objects when they carry metadata)."""
        body: dict[str, Any] = {URLS_FIELD: [url_entry(item) for item in self.entries]}
        if self.concurrency is not None:
            body["lambdaConcur"] = self.concurrency
        return body


def url_entry(item: Item) -> str | dict[str, Any]:
    """A ``urls`` entry of `item`: its URL, or ``{"url", **meta}`` when it has metadata."""
    return {**item.meta, "url": item.url} if item.meta else item.url


def from_job_file(job_file: str) -> PathsSource:
    """A job from an original-format JSON body (`--job FILE`, '-' for standard input)."""
    label = "stdin" if job_file == "-" else job_file
    text = _read_text(job_file, label)
    base, paths, concurrency = parse_job_json(text, label)
    return from_job(base, paths, concurrency, label)


def _read_text(job_file: str, label: str) -> str:
    try:
        raw = sys.stdin.buffer.read() if job_file == "-" else Path(job_file).read_bytes()
    except FileNotFoundError:
        raise JobError(f"{job_file}: job file not found") from None
    except OSError as exc:
        raise JobError(f"{job_file}: cannot read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobError(f"{label}: not UTF-8 text") from None


def parse_job_text(text: str, label: str) -> PathsSource | UrlsSource:
    """The source of a job body's JSON text."""
    return parse_job_document(load_json(text, label), label)


def parse_job_document(body: Any, label: str) -> PathsSource | UrlsSource:
    """The source of a parsed job body: paths under ``baseUrl``, or a ``urls`` list."""
    if isinstance(body, dict) and URLS_FIELD in body:
        return urls_from_document(body, label)
    if isinstance(body, dict) and "baseUrl" not in body and "resourcePaths" not in body:
        raise JobError(f"{label}: expected baseUrl with resourcePaths, or urls")
    base, paths, concurrency = job_from_document(body, label)
    return from_job(base, paths, concurrency, label)


def from_job(
    base_url: str, paths: Sequence[str], concurrency: int | None, file: str | None = None
) -> PathsSource:
    """The source of an already validated job body (`imgflow serve` keeps its jobs so)."""
    return PathsSource(base_url, lambda: iter(paths), len(paths), concurrency, kind=KIND, file=file)


def urls_from_document(body: dict[str, Any], label: str) -> UrlsSource:
    """The ``urls`` form of a job body; JobError for the body, Rejected for an entry."""
    if "baseUrl" in body or "resourcePaths" in body:
        raise JobError(f"{label}: give either urls or baseUrl with resourcePaths, not both")
    unknown = sorted(set(body) - _URL_FIELDS)
    if unknown:
        raise JobError(f"{label}: unknown field {unknown[0]!r}")
    entries = body[URLS_FIELD]
    if not isinstance(entries, list):
        raise JobError(f"{label}: urls must be a list of URLs or objects with a url")
    if not entries:
        raise JobError(f"{label}: urls is empty")
    items: list[Item] = []
    rejected: list[Rejected] = []
    for index, entry in enumerate(entries):
        where = f"{label} urls[{index}]"
        try:
            items.append(url_item(entry, where))
        except JobError as exc:
            rejected.append(Rejected(index, _given(entry), str(exc), entry))
    concurrency = lambda_concur(body.get("lambdaConcur"), label)
    return UrlsSource(tuple(items), tuple(rejected), concurrency, label)


def url_item(entry: Any, where: str) -> Item:
    """The item of one ``urls`` entry (a string, or an object with ``url``)."""
    meta: Mapping[str, Any] = NO_META
    if isinstance(entry, dict):
        if "url" not in entry:
            raise JobError(f"{where}: an object without a url field")
        extra = {k: v for k, v in entry.items() if k != "url"}
        meta = meta_view(extra)
        entry = entry["url"]
    if not isinstance(entry, str):
        raise JobError(f"{where}: expected a URL string, got {_given(entry)}")
    return full_url_item(entry, where, meta)


def full_url_item(raw: str, where: str, meta: Mapping[str, Any] = NO_META) -> Item:
    """The item of a full http(s) URL: its canonical URL (`engine.job.full_url`, the rule a
    table's rows follow) and the key `key_for` gives it, the same as the same URL's under
    a base URL."""
    url = full_url(raw, where)
    return Item(url=url, key=key_for(url), meta=meta)


def _given(entry: Any) -> str:
    text = entry if isinstance(entry, str) else json.dumps(entry, default=str)
    return text if len(text) <= 200 else text[:197] + "..."
