"""The tables of `<data-dir>/imgflow.db` and the migrations of databases made before.

- ``images``: url -> key, bytes, sha256, content type, run id, time, the file's
  modification time (``mtime_ns``), so a rerun notices a file changed behind its back,
  its ``width`` and ``height`` (read from its header; NULL when it does not say),
  and the server's ``etag`` and ``last_modified``, for a revalidation (``--refresh``);
- ``runs``: one row per run, with its source (``source``: the Source's description as
  JSON; ``base_url`` only for a source under one), settings, state and counts;
  ``unplanned`` is 1 until every item of the source is in ``results`` (a run stopped while
  its input was still read: a retry reads the source again for the items never planned);
  ``host_notes`` (a per-host run's summary lines of paused hosts and DNS failures, JSON);
- ``results``: one row per unique URL of a run, with the item's name (``path``) and
  metadata (``meta``, JSON, NULL when empty); rows start ``pending`` when the run is
  planned and are updated batch by batch (``failure_kind`` with each failure), so a run
  killed at any point can be reported, and nothing planned is ever silently dropped;
- ``run_parents``: run id -> the run it retries;
- ``shards``: the shard files a shard layout committed (imgflow/local/layouts/shards.py),
  each written in the same transaction as the index rows of its samples (``images.shard``
  and ``images.member`` say where a sample is; NULL in the files layout); ``marked``:
  a recount changed its samples, it is to be rewritten (local/layouts/shard_rewrite.py);
- ``robots``: origin -> the robots.txt answer last read from it (status, body, time),
  reused by runs for 24 hours (imgflow/engine/robots.py, local/index/robots.py).

The schema's version is the database's ``user_version``: a new database is made at
`VERSION`; an older one is brought there step by step, all steps in one write
transaction, so runs that open it together see it either before or after.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from imgflow.local.index.connection import Connected

VERSION = 7

_IMAGES = """CREATE TABLE images (
    url TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT,
    run_id TEXT NOT NULL,
    stored_at REAL NOT NULL,
    mtime_ns INTEGER,
    etag TEXT,
    last_modified TEXT,
    shard TEXT,
    member TEXT,
    width INTEGER,
    height INTEGER
)"""
_RUNS = """CREATE TABLE {name} (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    base_url TEXT,
    source TEXT,
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
    failed INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    unplanned INTEGER NOT NULL DEFAULT 0,
    host_notes TEXT
)"""
_RESULTS = """CREATE TABLE {name} (
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
    meta TEXT,
    failure_kind TEXT,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, url)
)"""
_RUN_PARENTS = "CREATE TABLE run_parents (run_id TEXT PRIMARY KEY, parent TEXT NOT NULL)"
_SHARDS = """CREATE TABLE IF NOT EXISTS shards (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    samples INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    committed_at REAL NOT NULL,
    marked INTEGER NOT NULL DEFAULT 0
)"""

_ROBOTS = """CREATE TABLE IF NOT EXISTS robots (
    origin TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    fetched_at REAL NOT NULL
)"""


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The names of `table`'s columns (none when there is no such table)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def column_or(name: str, present: set[str], default: str = "NULL") -> str:
    """`name` when the table has it, else `default` (reading an older database that only
    reads are allowed on, so it cannot be migrated)."""
    return name if name in present else default


def migrate(db: Connected) -> None:
    """Bring the database to `VERSION` (a database of a newer imgflow is left as it is)."""
    if _version(db.conn) >= VERSION:
        return
    with db.transaction("BEGIN IMMEDIATE"):
        version = _version(db.conn)  # another run may have migrated it meanwhile
        if version >= VERSION:
            return
        if not columns(db.conn, "runs"):
            _create(db.conn)
        else:
            for step in _STEPS[version:]:
                step(db.conn)
        db.conn.execute(f"PRAGMA user_version = {VERSION}")


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _create(conn: sqlite3.Connection) -> None:
    """A new database, made at the current version."""
    for statement in (
        _IMAGES,
        _RUNS.format(name="runs"),
        _RESULTS.format(name="results"),
        _RUN_PARENTS,
        _SHARDS,
        _ROBOTS,
    ):
        conn.execute(statement)


def _to_1(conn: sqlite3.Connection) -> None:
    """From the unversioned schema: runs gain ``source`` (``base_url`` may be NULL),
    results gain ``meta`` and ``failure_kind`` and are unique by URL (not path) within a
    run; older databases also gain the columns added over time before versions were."""
    for column, kind in (("mtime_ns", "INTEGER"), ("etag", "TEXT"), ("last_modified", "TEXT")):
        if column not in columns(conn, "images"):
            conn.execute(f"ALTER TABLE images ADD COLUMN {column} {kind}")
    conn.execute(_RUN_PARENTS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    _rebuild(conn, "runs", _RUNS, {"updated": "0", "unchanged": "0"})
    _rebuild(conn, "results", _RESULTS, {})


def _shards(conn: sqlite3.Connection) -> None:
    """Shard layouts: ``images`` gains ``shard`` and ``member``, and the ``shards`` table is
    made. Every part only if missing, so this step may run before or after other steps."""
    have = columns(conn, "images")
    for column in ("shard", "member"):
        if column not in have:
            conn.execute(f"ALTER TABLE images ADD COLUMN {column} TEXT")
    conn.execute(_SHARDS)


def _rebuild(conn: sqlite3.Connection, table: str, create: str, defaults: dict[str, str]) -> None:
    """Make `table` anew from `create`, keeping its rows (the new columns NULL, or as in
    `defaults` when an older table lacks them)."""
    old = columns(conn, table)
    conn.execute(create.format(name=f"{table}_new"))
    new = [name for name in _ordered(conn, f"{table}_new") if name in old or name in defaults]
    values = ", ".join(column_or(name, old, defaults.get(name, "NULL")) for name in new)
    conn.execute(f"INSERT INTO {table}_new ({', '.join(new)}) SELECT {values} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")


def _ordered(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def add_columns(conn: sqlite3.Connection, table: str, wanted: dict[str, str]) -> None:
    """Add those of `wanted` (name -> type) that `table` lacks: a step written this way
    can run in any order with other steps, and again."""
    have = columns(conn, table)
    for column, kind in wanted.items():
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _image_sizes(conn: sqlite3.Connection) -> None:
    """images gain ``width`` and ``height`` (read from each stored image's header)."""
    add_columns(conn, "images", {"width": "INTEGER", "height": "INTEGER"})


def _robots(conn: sqlite3.Connection) -> None:
    """The ``robots`` table: robots.txt answers kept across runs (for 24 hours)."""
    conn.execute(_ROBOTS)


def _unplanned(conn: sqlite3.Connection) -> None:
    """runs gain ``unplanned`` (1 while a run's input is not all planned; older runs: 0)."""
    add_columns(conn, "runs", {"unplanned": "INTEGER NOT NULL DEFAULT 0"})


def _host_notes(conn: sqlite3.Connection) -> None:
    """runs gain ``host_notes``: the lines of paused hosts and DNS failures."""
    add_columns(conn, "runs", {"host_notes": "TEXT"})


def _shard_marks(conn: sqlite3.Connection) -> None:
    """shards gain ``marked`` (a recount changed its samples: to be rewritten); every
    shard of an older database is marked, so the next start compares each once."""
    add_columns(conn, "shards", {"marked": "INTEGER NOT NULL DEFAULT 0"})
    conn.execute("UPDATE shards SET marked = 1")


# _STEPS[n] brings a database at version n to n + 1.
_STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _to_1,
    _shards,
    _image_sizes,
    _robots,
    _unplanned,
    _host_notes,
    _shard_marks,
)
