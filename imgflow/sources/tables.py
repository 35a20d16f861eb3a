"""Rows of a URL table, streamed: text (one URL a line), CSV, TSV, JSON Lines or Parquet,
any of them gzip-compressed.

`open_rows` checks the head of the input at once (a header with the URL column, a readable
gzip stream, pyarrow for Parquet) and returns the columns and a generator of the rest:
``(line, row)`` pairs, where `line` is the row's line number in the file (its row number
in a Parquet file), and a row maps column names to JSON values. Problems with the whole
file are a JobError naming the file (and line); a row's own problems are left to the
caller, which fails that row alone.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import IO, Any

from imgflow.errors import JobError

FORMATS = ("txt", "csv", "tsv", "jsonl", "parquet")
_EXTENSIONS = {
    ".txt": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
PARQUET_HINT = "pip install 'imgflow[parquet]'"
PARQUET_BATCH = 8192
Row = tuple[int, dict[str, Any]]
# A row that could not be read as one (a JSON Lines line that is not an object) maps this
# name to its problem: the caller fails that row alone.
UNREADABLE = "\x00unreadable"


def format_of(name: str, given: str | None) -> str:
    """The input's format: `given` (--input-format), else from the file's extension
    (``.gz`` looked through), else text."""
    if given is not None:
        if given not in FORMATS:
            raise JobError(f"--input-format: expected one of {', '.join(FORMATS)}, got {given!r}")
        return given
    lower = name.lower().removesuffix(".gz")
    for ext, kind in _EXTENSIONS.items():
        if lower.endswith(ext):
            return kind
    return "txt"


def gzipped(name: str, head: bytes) -> bool:
    """Compressed: named ``.gz``, or starting with gzip's magic bytes."""
    return name.lower().endswith(".gz") or head[:2] == b"\x1f\x8b"


def open_rows(
    stream: IO[bytes], kind: str, label: str, url_column: str
) -> tuple[list[str], Iterator[Row]]:
    """The columns of the table in `stream` and a generator of its rows (see module doc)."""
    if kind == "parquet":
        return _parquet(stream, label, url_column)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    if kind == "txt":
        return [url_column], _text_rows(text, label, url_column)
    if kind == "jsonl":
        return _jsonl(text, label, url_column)
    return _delimited(text, label, url_column, "\t" if kind == "tsv" else ",")


def unpacked(stream: IO[bytes], label: str) -> IO[bytes]:
    """`stream` decompressed as it is read (its first bytes checked now)."""
    unpacking = gzip.GzipFile(fileobj=stream, mode="rb")
    reader = io.BufferedReader(unpacking, 1 << 16)
    try:
        reader.peek(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise JobError(f"{label}: not a readable gzip file ({exc})") from None
    return reader


def guarded(rows: Iterator[Row], label: str) -> Iterator[Row]:
    """`rows`, with a read or decoding failure met along the way as one JobError line."""
    line = 0
    try:
        for line, row in rows:
            yield line, row
    except UnicodeDecodeError:
        raise JobError(f"{label} after line {line}: not UTF-8 text") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise JobError(f"{label} after line {line}: cannot read ({exc})") from None
    except csv.Error as exc:
        raise JobError(f"{label} after line {line}: not a valid table ({exc})") from None


def _readline(text: io.TextIOWrapper, label: str) -> str:
    try:
        return text.readline()
    except UnicodeDecodeError:
        raise JobError(f"{label} line 1: not UTF-8 text") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise JobError(f"{label}: cannot read ({exc})") from None


def _text_rows(text: io.TextIOWrapper, label: str, column: str) -> Iterator[Row]:
    def rows() -> Iterator[Row]:
        for number, line in enumerate(text, start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                yield number, {column: stripped}

    return guarded(rows(), label)


def _delimited(
    text: io.TextIOWrapper, label: str, column: str, delimiter: str
) -> tuple[list[str], Iterator[Row]]:
    first = _readline(text, label)
    if not first.strip():
        raise JobError(f"{label} line 1: no header row (the table is empty or starts blank)")
    header = next(csv.reader([first], delimiter=delimiter))
    header = [name.strip() for name in header]
    if column not in header:
        if any(name.lower().startswith(("http://", "https://")) for name in header):
            raise JobError(
                f"{label} line 1: no header row (line 1 holds a URL); add a header line"
                f" naming the columns, e.g. '{column}'"
            )
        raise JobError(
            f"{label} line 1: no column {column!r} (columns: {', '.join(header)});"
            " name it with --url-column"
        )

    def rows() -> Iterator[Row]:
        reader = csv.reader(text, delimiter=delimiter)
        for values in reader:
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            row = dict(zip(header, values, strict=False))
            yield reader.line_num + 1, row

    return header, guarded(rows(), label)


def _jsonl(text: io.TextIOWrapper, label: str, column: str) -> tuple[list[str], Iterator[Row]]:
    number = 0
    first: dict[str, Any] | None = None
    while first is None:
        line = _readline(text, label)
        number += 1
        if not line:
            raise JobError(f"{label}: no rows (the file is empty)")
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JobError(f"{label} line {number}: not JSON ({exc.msg})") from None
        if not isinstance(parsed, dict):
            raise JobError(f"{label} line {number}: not a JSON object")
        first = parsed
    if column not in first:
        raise JobError(
            f"{label} line {number}: no field {column!r} (fields: {', '.join(first)});"
            " name it with --url-column"
        )
    start, head = number, first

    def rows() -> Iterator[Row]:
        yield start, head
        for line_number, line in enumerate(text, start=start + 1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_number, {UNREADABLE: f"not JSON ({exc.msg})"}
                continue
            yield (
                line_number,
                parsed if isinstance(parsed, dict) else {UNREADABLE: "not a JSON object"},
            )

    return list(first), guarded(rows(), label)


def _parquet(stream: IO[bytes], label: str, column: str) -> tuple[list[str], Iterator[Row]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise JobError(f"{label}: reading Parquet needs pyarrow: {PARQUET_HINT}") from None
    try:
        table = pq.ParquetFile(stream)
    except Exception as exc:  # pyarrow's errors are ArrowInvalid, OSError...
        raise JobError(f"{label}: not a readable Parquet file ({exc})") from None
    names = list(table.schema_arrow.names)
    if column not in names:
        raise JobError(
            f"{label}: no column {column!r} (columns: {', '.join(names)});"
            " name it with --url-column"
        )

    def rows() -> Iterator[Row]:
        number = 0
        try:
            for batch in table.iter_batches(batch_size=PARQUET_BATCH):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
        except Exception as exc:
            raise JobError(f"{label} after row {number}: cannot read ({exc})") from None

    return names, rows()
