"""A source of full URLs: `imgflow run --urls-file FILE` (a list or a table of URLs).

The table is read by `sources/tables.py` (text, CSV, TSV, JSON Lines, Parquet, any of them
gzip-compressed). Each row's URL is split into its origin and its path, and the path is
normalised by the seed contract's own rules, so a URL from a table and the same URL reached
from a base URL and a path are the same URL, with the same stored key.

Problems with the whole file (no URL column, no header, a corrupt gzip, no pyarrow) stop
the command before anything is written. A bad row (a relative URL, another scheme, an
empty or over-long URL) becomes an item that fails with its line number; the others run.

A regular file up to `CHECKED_BYTES` is read once whole before the run (every file-level
problem is found, and the count is known); a larger file, standard input or a pipe is
only checked at its head and then streamed once, while the run fetches: its count is
unknown (None) until it has been planned, and a problem found further down stops the run
with one line (the images fetched so far are kept, as after an interrupt).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imgflow.engine.job import full_url
from imgflow.engine.keys import key_for
from imgflow.engine.plan import Item
from imgflow.errors import JobError
from imgflow.sources.tables import UNREADABLE, Row, format_of, gzipped, open_rows, unpacked

KIND = "urls"
CHECKED_BYTES = 8 << 20
CAPTION = "caption"


@dataclass
class UrlsSource:
    """Items of full URLs read from `file` (a path, or a stream read once)."""

    label: str
    kind: str
    url_column: str
    caption_column: str | None
    count: int | None
    _path: Path | None = None
    _once: Iterator[Row] | None = field(default=None, repr=False)
    _stream: IO[bytes] | None = field(default=None, repr=False)

    concurrency: int | None = None
    base_url: str | None = None

    def items(self) -> Iterator[Item]:
        """The item of each row, in input order (a stream can be read only once)."""
        for line, row in self._rows():
            yield self.item(line, row)

    def item(self, line: int, row: Mapping[str, Any]) -> Item:
        """The item of one row: its URL, key and metadata, or its problem."""
        raw = row.get(self.url_column)
        meta = _meta(row, self.url_column, self.caption_column)
        where = f"{self.label} {'row' if self.kind == 'parquet' else 'line'} {line}"
        try:
            if UNREADABLE in row:
                raise JobError(f"{where}: {row[UNREADABLE]}")
            url = full_url(raw, where)
        except JobError as exc:
            text = raw if isinstance(raw, str) else ""
            return Item(url=text.strip() or where, key="", meta=meta, path=where, problem=str(exc))
        return Item(url=url, key=key_for(url), meta=meta)

    def _rows(self) -> Iterator[Row]:
        if self._once is not None:
            rows, self._once = self._once, None
            try:
                yield from rows
            finally:
                self._close()
            return
        if self._path is None:
            raise RuntimeError(f"{self.label}: a stream is read only once")
        with self._path.open("rb") as stream:
            _, rows = _open(stream, self.label, self.kind, self.url_column, self._path.name)
            yield from rows

    def describe(self) -> dict[str, Any]:
        """``{"kind": "urls", "file", "format", "urlColumn", "captionColumn"}`` (and
        ``path``, the file's absolute path, when a retry can read it again)."""
        return {
            "kind": KIND,
            "file": self.label,
            "format": self.kind,
            "urlColumn": self.url_column,
            "captionColumn": self.caption_column,
            **({"path": str(self._path.absolute())} if self._path is not None else {}),
        }

    def cleanup(self) -> None:
        """Close a stream left unread."""
        self._close()

    def _close(self) -> None:
        if self._stream is not None and self._stream is not sys.stdin.buffer:
            self._stream.close()
        self._stream = None


def from_urls_file(
    urls_file: str,
    input_format: str | None = None,
    url_column: str = "url",
    caption_column: str | None = None,
) -> UrlsSource:
    """The source of `--urls-file` ('-' reads standard input, streamed once)."""
    label = "stdin" if urls_file == "-" else urls_file
    kind = format_of("" if urls_file == "-" else urls_file, input_format)
    if urls_file == "-":
        return _once(sys.stdin.buffer, label, kind, url_column, caption_column, "")
    path = Path(urls_file)
    if path.is_dir():
        raise JobError(f"{label}: is a folder, not a URLs file")
    if not path.exists():
        raise JobError(f"{label}: URLs file not found")
    try:
        stream: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise JobError(f"{label}: cannot read ({exc.strerror})") from None
    if not path.is_file():  # a pipe or a device: read once, while the run goes
        return _once(stream, label, kind, url_column, caption_column, path.name)
    try:
        columns, rows = _open(stream, label, kind, url_column, path.name)
        caption = _caption(columns, caption_column, label)
        count: int | None = None
        if path.stat().st_size <= CHECKED_BYTES:
            count = sum(1 for _ in rows)
            if count == 0:
                raise JobError(f"{label}: no URLs (the file is empty or only comments)")
    finally:
        stream.close()
    return UrlsSource(label, kind, url_column, caption, count, _path=path)


def _once(
    stream: IO[bytes],
    label: str,
    kind: str,
    url_column: str,
    caption_column: str | None,
    name: str,
) -> UrlsSource:
    if kind == "parquet":
        raise JobError(f"{label}: a Parquet file must be a regular file (it is read by its end)")
    columns, rows = _open(stream, label, kind, url_column, name)
    caption = _caption(columns, caption_column, label)
    return UrlsSource(label, kind, url_column, caption, None, _once=rows, _stream=stream)


def _open(
    stream: IO[bytes], label: str, kind: str, url_column: str, name: str
) -> tuple[list[str], Iterator[Row]]:
    if kind != "parquet":
        head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
        if gzipped(name, head):
            stream = unpacked(stream, label)
    return open_rows(stream, kind, label, url_column)


def _caption(columns: list[str], given: str | None, label: str) -> str | None:
    if given is None:
        return CAPTION if CAPTION in columns else None
    if given not in columns:
        raise JobError(f"{label}: no caption column {given!r} (columns: {', '.join(columns)})")
    return given


def _meta(row: Mapping[str, Any], url_column: str, caption: str | None) -> dict[str, Any]:
    """Every column but the URL's, as JSON values (the caption as ``caption``)."""
    meta: dict[str, Any] = {}
    for name, value in row.items():
        if name in (url_column, UNREADABLE):
            continue
        meta[CAPTION if name == caption else name] = _json_value(value)
    return meta


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)
