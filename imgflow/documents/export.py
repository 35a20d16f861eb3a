"""`imgflow export`'s table, whatever the backend: its columns and its writers.

A backend hands over an `ExportTable` (the columns, then its rows streamed once); the rows
are written as they come (Parquet in record batches of `PARQUET_ROWS`), so memory stays
flat whatever the table's size. A file is written beside its final name and renamed at the
end: an export stopped half-way leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from imgflow.errors import UsageError

COLUMNS = (
    "url",
    "key",
    "path",
    "bytes",
    "sha256",
    "content_type",
    "width",
    "height",
    "run",
    "time",
    "outcome",
    "failure_kind",
    "error",
)
SHARD_COLUMNS = ("shard", "member")  # after COLUMNS, when a shard layout stored images
FORMATS = ("csv", "jsonl", "parquet")
PARQUET_ROWS = 10_000
PARQUET_HINT = "pip install 'imgflow[parquet]'"
_INTEGERS = frozenset({"bytes", "width", "height"})


@dataclass(frozen=True)
class ExportTable:
    """The columns of an export and its rows (streamed once)."""

    columns: tuple[str, ...]
    meta_names: dict[str, str]  # metadata name -> its column
    rows: Iterator[dict[str, Any]]


def meta_columns(names: list[str]) -> dict[str, str]:
    """Each metadata name's column: the name, or ``meta.<name>`` when a fixed column has it."""
    return {name: f"meta.{name}" if name in COLUMNS else name for name in names}


def check_format(fmt: str, output: Path | None) -> None:
    """Refuse an unknown format, and Parquet to standard output or without pyarrow."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs -o FILE")
        _pyarrow()


def write_table(table: ExportTable, fmt: str, output: Path | None) -> int:
    """Write `table` to `output` (standard output when None); the number of rows written."""
    if output is None:
        return _write(table, fmt, sys.stdout)
    part = output.with_name(f".{output.name}.part-{os.getpid()}")
    try:
        if fmt == "parquet":
            count = _parquet(table, part)
        else:
            with part.open("w", encoding="utf-8", newline="") as stream:
                count = _write(table, fmt, stream)
        part.replace(output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise UsageError(f"{output}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return count


def _write(table: ExportTable, fmt: str, stream: IO[str]) -> int:
    count = 0
    if fmt == "jsonl":
        for row in table.rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(stream)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_cell(row[column]) for column in table.columns])
        count += 1
    return count


def _cell(value: Any) -> Any:
    """A CSV cell: text and numbers as they are, other JSON values as JSON, None empty."""
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError(f"--format parquet needs pyarrow: {PARQUET_HINT}") from None
    return pyarrow


def _parquet(table: ExportTable, part: Path) -> int:
    """Parquet: fixed columns typed, metadata columns as text (JSON for non-text)."""
    pa = _pyarrow()
    meta = set(table.meta_names.values())
    fields = [
        pa.field(name, pa.int64() if name in _INTEGERS and name not in meta else pa.string())
        for name in table.columns
    ]
    schema = pa.schema(fields)
    count = 0
    with pa.parquet.ParquetWriter(str(part), schema) as writer:
        for chunk in _chunks(table.rows):
            columns = {
                name: [_text(row[name]) if name in meta else row[name] for row in chunk]
                for name in table.columns
            }
            writer.write_batch(pa.record_batch(columns, schema=schema))
            count += len(chunk)
    return count


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= PARQUET_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
