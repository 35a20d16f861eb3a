"""`imgflow export` on the local backend: the index as CSV, JSON Lines or Parquet.

Rows come streamed from `local/index/export.py` and are written as they come (Parquet in
record batches of `PARQUET_ROWS`), so memory stays flat whatever the index's size. A file
is written beside its final name and renamed at the end: an export stopped half-way leaves
no half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from imgflow.errors import UsageError
from imgflow.local.folder import DB_NAME, refuse_linked
from imgflow.local.index import Database, sqlite_errors
from imgflow.local.index.export import COLUMNS, ExportTable, export_table, run_exists

FORMATS = ("csv", "jsonl", "parquet")
PARQUET_ROWS = 10_000
PARQUET_HINT = "pip install 'imgflow[parquet]'"
_INTEGERS = frozenset({"bytes", "width", "height"})


def export(data_dir: Path, fmt: str, output: Path | None, run_id: str | None) -> int:
    """Write the index of `data_dir` (one run's results, or every run's) to `output`
    (standard output when None); the number of rows written."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs -o FILE")
        _pyarrow()
    refuse_linked(data_dir)
    path = data_dir / DB_NAME
    if not path.exists():
        raise UsageError(f"no runs yet in {data_dir}")
    db = Database(path, readonly=True)
    try:
        with sqlite_errors(db.path):
            if run_id is not None and not run_exists(db.conn, run_id):
                raise UsageError(f"run {run_id!r} not found in {path}")
            table = export_table(db.conn, data_dir / "images", run_id)
            if output is None:
                return _write(table, fmt, sys.stdout)
            return _atomic(table, fmt, output)
    finally:
        db.close()


def _atomic(table: ExportTable, fmt: str, output: Path) -> int:
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
    fields = [pa.field(name, pa.int64() if name in _INTEGERS else pa.string()) for name in COLUMNS]
    fields += [pa.field(column, pa.string()) for column in table.meta_names.values()]
    schema = pa.schema(fields)
    meta_columns = set(table.meta_names.values())
    count = 0
    with pa.parquet.ParquetWriter(str(part), schema) as writer:
        for chunk in _chunks(table.rows):
            columns = {
                name: [_text(row[name]) if name in meta_columns else row[name] for row in chunk]
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
