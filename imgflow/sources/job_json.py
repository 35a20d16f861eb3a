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
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from imgflow.engine.job import (
    job_from_document,
    normalize_path,
    number_too_long,
    parse_job_json,
    validate_base_url,
    validate_concurrency,
)
from imgflow.engine.keys import key_for
from imgflow.engine.plan import NO_META, Item, item_for
from imgflow.errors import JobError
from imgflow.sources.paths import PathsSource

KIND = "job"
URLS_KIND = "urls"
URLS_FIELD = "urls"
MAX_URL_CHARS = 2048
_DIGITS = re.compile(r"\s*[0-9]+\s*")
_URL_FIELDS = frozenset({URLS_FIELD, "lambdaConcur"})


@dataclass(frozen=True)
class Rejected:
    """A ``urls`` entry that is not a URL imgflow can fetch: its index, what it held, why."""

    index: int
    given: str
    message: str


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
        """How many items run (rejected entries are not items)."""
        return len(self.entries)

    def items(self) -> Iterator[Item]:
        """The items in the order given."""
        return iter(self.entries)

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
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError:  # an integer over Python's digit limit
        raise JobError(f"{label}: not a job: {number_too_long()}") from None
    return parse_job_document(body, label)


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
            rejected.append(Rejected(index, _given(entry), str(exc)))
    concurrency = _concurrency(body.get("lambdaConcur"), label)
    return UrlsSource(tuple(items), tuple(rejected), concurrency, label)


def url_item(entry: Any, where: str) -> Item:
    """The item of one ``urls`` entry (a string, or an object with ``url``)."""
    meta: Mapping[str, Any] = NO_META
    if isinstance(entry, dict):
        if "url" not in entry:
            raise JobError(f"{where}: an object without a url field")
        extra = {k: v for k, v in entry.items() if k != "url"}
        meta = MappingProxyType(extra) if extra else NO_META
        entry = entry["url"]
    if not isinstance(entry, str):
        raise JobError(f"{where}: expected a URL string, got {_given(entry)}")
    return full_url_item(entry, where, meta)


def full_url_item(raw: str, where: str, meta: Mapping[str, Any] = NO_META) -> Item:
    """The item of a full http(s) URL: its canonical URL and the key `key_for` gives it
    (the same as the same URL under a base URL), with an empty resource path."""
    url = raw.strip()
    if not url:
        raise JobError(f"{where}: empty URL")
    if len(url) > MAX_URL_CHARS:
        raise JobError(f"{where}: URL is {len(url)} characters long (at most {MAX_URL_CHARS})")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise JobError(f"{where}: not a valid URL: {_show(url)}") from None
    if not parts.scheme:
        raise JobError(f"{where}: {_show(url)} is not a full URL (no http:// or https://)")
    if parts.scheme.lower() not in ("http", "https"):
        raise JobError(f"{where}: only http:// and https:// URLs are supported, got {_show(url)}")
    if parts.fragment:
        url = url.partition("#")[0]
        parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        base = validate_base_url(origin)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        path = normalize_path(rest, where)
    except JobError as exc:
        detail = str(exc).split(": ", 1)[-1]  # without its "where"; naming the URL, not its path
        detail = detail.replace(_show(rest.strip()), _show(url), 1)
        raise JobError(f"{where}: {detail}") from None
    url = item_for(base, path).url
    return Item(url=url, key=key_for(url), meta=meta)


def job_concurrency(value: Any, label: str) -> int | None:
    """A body's lambdaConcur (a whole number, or its digits as a string), or None."""
    return _concurrency(value, label)


def _concurrency(value: Any, label: str) -> int | None:
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        try:
            value = int(value)  # the original handler took int(lambdaConcur)
        except ValueError:  # over Python's digit limit
            detail = f"expected a whole number, got {number_too_long()}"
            raise JobError(f"{label}: lambdaConcur: {detail}") from None
    return None if value is None else validate_concurrency(value, f"{label}: lambdaConcur")


def _given(entry: Any) -> str:
    text = entry if isinstance(entry, str) else json.dumps(entry, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _show(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")
