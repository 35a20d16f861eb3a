"""`imgflow export` on the local backend: the index as CSV, JSON Lines or Parquet.

Rows come streamed from `local/index/export.py`; `documents/export.py` writes them (the
same writers as the aws backend's export).
"""

from __future__ import annotations

from pathlib import Path

from imgflow.documents.export import check_format, write_table
from imgflow.errors import UsageError
from imgflow.local.folder import DB_NAME, refuse_linked
from imgflow.local.index import Database, has_runs, sqlite_errors
from imgflow.local.index.export import export_table, run_exists
from imgflow.local.layouts.shard_format import SHARDS_DIR


def export(data_dir: Path, fmt: str, output: Path | None, run_id: str | None) -> int:
    """Write the index of `data_dir` (one run's results, or every run's) to `output`
    (standard output when None); the number of rows written."""
    check_format(fmt, output)
    refuse_linked(data_dir)
    path = data_dir / DB_NAME
    if not has_runs(path):
        raise UsageError(f"no runs yet in {data_dir}")
    db = Database(path, readonly=True)
    try:
        with sqlite_errors(db.path):
            if run_id is not None and not run_exists(db.conn, run_id):
                raise UsageError(f"run {run_id!r} not found in {path}")
            return write_table(
                export_table(db.conn, data_dir / "images", data_dir / SHARDS_DIR, run_id),
                fmt,
                output,
            )
    finally:
        db.close()
