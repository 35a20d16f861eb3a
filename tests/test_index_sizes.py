"""The index's image sizes: a database of the version before gains ``width`` and
``height``, and the step that adds them can run again, in any order with other steps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from imgflow.local.index import Database
from imgflow.local.index.schema import VERSION, add_columns, columns


def test_an_index_of_version_1_gains_width_and_height(tmp_path: Path) -> None:
    path = tmp_path / "imgflow.db"
    Database(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO images (url, key, bytes, sha256, run_id, stored_at)"
        " VALUES ('http://h/a.gif', 'h/a.gif', 1, 'x', 'r', 0)"
    )
    conn.execute("ALTER TABLE images DROP COLUMN width")
    conn.execute("ALTER TABLE images DROP COLUMN height")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    Database(path).close()
    conn = sqlite3.connect(path)
    try:
        assert {"width", "height"} <= columns(conn, "images")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert conn.execute("SELECT url, width FROM images").fetchall() == [
            ("http://h/a.gif", None)
        ]
        add_columns(conn, "images", {"width": "INTEGER", "height": "INTEGER"})  # again: no-op
    finally:
        conn.close()
