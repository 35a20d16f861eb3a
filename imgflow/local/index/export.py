"""The index as a table, for `imgflow export`: one row per result of every run (or one).

Columns: the fixed `COLUMNS`, then the metadata's columns (a table's caption and other
columns), each named as in the input unless that clashes with a fixed column (then
``meta.<name>``). Rows are streamed from SQLite in input order; the metadata's names are
found first by SQLite itself (``json_each``), so nothing grows with the number of rows.
When a shard layout stored any of them, ``shard`` (the shard file) and ``member`` follow
the fixed columns, and a sample's ``path`` is empty (no file of its own).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgflow.documents.export import COLUMNS, SHARD_COLUMNS, ExportTable, meta_columns
from imgflow.local.index.runs import PENDING
from imgflow.local.index.schema import columns

_FAILED = "failed"


def export_table(
    conn: sqlite3.Connection, images: Path, shards: Path, run_id: str | None
) -> ExportTable:
    """The results of run `run_id` (every run when None); `images` is the folder stored
    keys are under (a row's ``path``), `shards` the folder of a shard layout's shards."""
    where, args = ("WHERE r.run_id = ? AND", (run_id,)) if run_id else ("WHERE", ())
    names = _meta_names(conn, run_id)
    metas = meta_columns(names)
    image_columns = columns(conn, "images")
    size = "i.width, i.height" if "width" in image_columns else "NULL, NULL"
    place = "i.shard, i.member" if "shard" in image_columns else "NULL, NULL"
    sharded = place != "NULL, NULL" and _sharded(conn, run_id)
    has_meta = "meta" in columns(conn, "results")
    kind = "r.failure_kind" if "failure_kind" in columns(conn, "results") else "NULL"
    cursor = conn.execute(
        f"SELECT r.url, r.key, r.bytes, r.sha256, r.content_type, {size}, {place}, r.run_id,"
        f" r.finished_at, r.outcome, {kind}, r.error, {'r.meta' if has_meta else 'NULL'}"
        " FROM results r LEFT JOIN images i ON i.url = r.url AND r.outcome != ?"
        f" {where} r.outcome != ? ORDER BY r.run_id, r.seq",
        (_FAILED, *args, PENDING),
    )

    def rows() -> Iterator[dict[str, Any]]:
        for (
            url,
            key,
            size_,
            sha,
            ctype,
            width,
            height,
            shard,
            member,
            run,
            at,
            outcome,
            fkind,
            error,
            meta,
        ) in cursor:
            failed = outcome == _FAILED
            row: dict[str, Any] = {
                "url": url,
                "key": None if failed else key,
                "path": None if failed or shard else str(images / key),
                "bytes": size_,
                "sha256": sha,
                "content_type": ctype,
                "width": width,
                "height": height,
                "run": run,
                "time": _iso(at),
                "outcome": outcome,
                "failure_kind": fkind if failed else None,
                "error": error,
            }
            if sharded:  # a shard layout's image: the shard file and its member
                row["shard"] = None if failed or not shard else str(shards / shard)
                row["member"] = None if failed or not shard else member
            values = json.loads(meta) if meta else {}
            for name, column in metas.items():
                row[column] = values.get(name)
            yield row

    fixed = (*COLUMNS, *SHARD_COLUMNS) if sharded else COLUMNS
    return ExportTable((*fixed, *metas.values()), metas, rows())


def _sharded(conn: sqlite3.Connection, run_id: str | None) -> bool:
    """Whether any image of the export is in a shard (a shard layout's run)."""
    where = "AND r.run_id = ?" if run_id else ""
    found = conn.execute(
        "SELECT 1 FROM results r JOIN images i ON i.url = r.url"
        f" WHERE i.shard IS NOT NULL {where} LIMIT 1",
        (run_id,) if run_id else (),
    ).fetchone()
    return found is not None


def run_exists(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the index has run `run_id`."""
    return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None


def _meta_names(conn: sqlite3.Connection, run_id: str | None) -> list[str]:
    """The metadata's names, in the order first met (by SQLite; the rows stay on disk)."""
    if "meta" not in columns(conn, "results"):
        return []
    where = "AND r.run_id = ?" if run_id else ""
    cursor = conn.execute(
        "SELECT j.key, MIN(r.run_id || printf('%020d', r.seq)) AS first"
        " FROM results r, json_each(r.meta) j"
        f" WHERE r.meta IS NOT NULL {where} GROUP BY j.key ORDER BY first, MIN(j.id)",
        (run_id,) if run_id else (),
    )
    return [str(name) for name, _ in cursor]


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
