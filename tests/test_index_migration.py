"""A database made by an imgflow from before schema versions opens and keeps its runs."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from test_sources import UrlSource

from imgflow.engine.failures import FailureKind
from imgflow.engine.keys import key_for
from imgflow.engine.messages import not_found
from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome, Summary
from imgflow.local.folder import DB_NAME
from imgflow.local.index import Database
from imgflow.local.index.schema import VERSION
from imgflow.local.retry import parents, plan_retry

# The tables as imgflow made them before versions (imgflow/local/db.py at c58b85d), with
# the columns it added on open and retry's table of parents.
UNVERSIONED = """
CREATE TABLE IF NOT EXISTS images (
    url TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT,
    run_id TEXT NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    base_url TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    max_batches INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    state TEXT NOT NULL,
    pid INTEGER,
    total INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    stored INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    url TEXT NOT NULL,
    key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    bytes INTEGER,
    sha256 TEXT,
    content_type TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    finished_at REAL,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, path)
);
ALTER TABLE images ADD COLUMN mtime_ns INTEGER;
ALTER TABLE images ADD COLUMN etag TEXT;
ALTER TABLE images ADD COLUMN last_modified TEXT;
ALTER TABLE runs ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS run_parents (run_id TEXT PRIMARY KEY, parent TEXT NOT NULL);
"""
BASE = "https://h.example/img"


def old_database(path: Path) -> None:
    """A finished run (one stored, one failed) and a retry of it that was interrupted."""
    gone = f"{BASE}/b.gif"
    with sqlite3.connect(path) as conn:
        conn.executescript(UNVERSIONED)
        for run, state, counts in (
            ("old", "failed", (2, 1, 0, 1)),
            ("again", "running", (1, 0, 0, 0)),
        ):
            conn.execute(
                "INSERT INTO runs (id, backend, base_url, concurrency, batch_size, max_batches,"
                " started_at, finished_at, state, pid, total, stored, skipped, failed)"
                " VALUES (?, 'local', ?, 4, 100, 2, 1000.0, ?, ?, NULL, ?, ?, ?, ?)",
                (run, BASE, 1010.0 if state == "failed" else None, state, *counts),
            )
        conn.executemany(
            "INSERT INTO results (run_id, seq, path, url, key, outcome, status_code, bytes,"
            " sha256, content_type, error, attempts, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("old", 1, "a.gif", f"{BASE}/a.gif", "h.example/img/a.gif", "stored", 200, 3,
                 "c" * 64, "image/gif", None, 1, 1005.0),
                ("old", 2, "b.gif", gone, "h.example/img/b.gif", "failed", 404, None, None,
                 None, not_found(gone), 2, 1006.0),
                ("again", 1, "b.gif", gone, "h.example/img/b.gif", "pending", None, None, None,
                 None, None, 0, None),
            ],
        )  # fmt: skip
        conn.execute(
            "INSERT INTO images (url, key, bytes, sha256, content_type, run_id, stored_at,"
            " mtime_ns) VALUES (?, ?, 3, ?, 'image/gif', 'old', 1005.0, 7)",
            (f"{BASE}/a.gif", "h.example/img/a.gif", "c" * 64),
        )
        conn.execute("INSERT INTO run_parents VALUES ('again', 'old')")


def check_old_runs(db: Database) -> None:
    info = db.run_info("old")
    assert info is not None
    assert (info.base_url, info.source, info.state) == (BASE, None, "failed")
    assert info.summary == Summary(2, 1, 0, 1) and info.total == 2
    again = db.run_info("again")
    assert again is not None and again.state == "interrupted"  # its process is gone
    stored, failed = db.records("old")
    assert (stored.outcome, stored.key, stored.failure_kind) == (
        Outcome.STORED,
        "h.example/img/a.gif",
        None,
    )
    assert (failed.outcome, failed.status_code, failed.attempts) == (Outcome.FAILED, 404, 2)
    assert failed.failure_kind is FailureKind.NOT_FOUND  # read from the message of old rows
    assert list(db.failure_messages("old")) == [not_found(f"{BASE}/b.gif")]
    assert set(db.stamps([f"{BASE}/a.gif"])) == {f"{BASE}/a.gif"}


def test_an_unversioned_database_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    old_database(path)
    untouched = tmp_path / "copy.db"
    shutil.copy(path, untouched)

    read_only = Database(untouched, readonly=True)  # (status in a read-only folder)
    try:
        check_old_runs(read_only)
    finally:
        read_only.close()

    db = Database(path)
    try:
        check_old_runs(db)
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
        # The new columns are there: a run of items with metadata and no base URL.
        url = f"{BASE}/c.gif"
        db.create_run("new", UrlSource([(url, {"caption": "c"})]), 1, 10, 1)
        assert db.plan("new", [Item(url, key_for(url), {"caption": "c"}), Item(url, "k")]) == (1, 1)
        (batch,) = list(db.pending_batches("new", 10))
        assert [dict(i.meta) for i in batch] == [{"caption": "c"}]
        new = db.run_info("new")
        assert new is not None and (new.base_url, new.source) == (None, {"kind": "urls", "rows": 1})
    finally:
        db.close()
    assert parents(path, ["again", "old"]) == {"again": "old"}
    retry = plan_retry(tmp_path, "old")
    assert retry.failed == 1 and retry.job.source.base_url == BASE
    assert [(i.path, i.url) for i in retry.job.source.items()] == [("b.gif", f"{BASE}/b.gif")]

    again = Database(path)  # opening a migrated database again changes nothing
    try:
        check_old_runs(again)
    finally:
        again.close()
