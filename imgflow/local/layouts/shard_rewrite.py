"""Rewriting a shard without the samples that left it, so a sample is never in two shards.

A refreshed or retried image goes into a new shard and its index row moves there; a row
found not intact (by a run, or by `check --repair`) is forgotten. Either way, in the same
index transaction, `Database.recount_shards` sets the old shard's `shards.samples` to the
rows still placed in it (its row is deleted when none is) and, when that count changed,
marks it (`shards.marked`). Its `_stats.json` still says the old count. `mend_shards` (at
a run's end, whatever its layout: `mend_folder`; at the start of every shard run and of
`check --repair`) reads the stats files of the marked shards only, and rewrites each one
whose stats count differs, once however many commits took samples from it:

1. the shard's kept samples (the members the index places in it) are copied into
   `.rewrite-<name>` beside it, fsynced, given the old shard's modification time (the
   rows' `mtime_ns` stay true);
2. a tar's metadata table is filtered the same way into `.rewrite-<table>`, and the stats
   file rewritten with the new count into `.rewrite-<stem>_stats.json`, fsynced;
3. renames over the old names: the table, then the shard, then the stats file last (the
   counts agree only once the shard is rewritten), then the folder fsynced; then the
   index's marks are cleared.

A kill at any moment leaves every shard whole at its final name (a rename is atomic) and
the index right about each row's shard and member (kept members keep their names);
until its mark is cleared the next run (or `check --repair`) compares the counts again
and rewrites it from what is at its final name while they differ. A shard no row is placed in
any longer is removed, its stats file last (`remove_shard`). `.rewrite-` temporaries left
by a kill are removed first.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from imgflow.local.folder import DataFolder
from imgflow.local.index import Database
from imgflow.local.layouts.shard_folder import (
    READ,
    lstat,
    remove_shard,
    shard_files,
    stats_run,
    table_rows,
)
from imgflow.local.layouts.shard_format import SHARDS_DIR, format_of
from imgflow.local.layouts.shard_staging import CREATE
from imgflow.local.safefs import StorageError

TEMPORARY = ".rewrite-"
PARTIAL = ".partial"  # so no glob of a shard's own suffix (`*.tar`) picks a temporary up


def partial_name(name: str) -> str:
    """Where a rewrite writes `name`'s new copy, in the same folder."""
    return f"{TEMPORARY}{name}{PARTIAL}"


def mend_shards(shards: int, db: Database, *, fsync: bool) -> list[str]:
    """Rewrite every marked shard of the folder (the index's marks: only their stats files
    are read), remove the shards the index lists no longer (those a run of this index
    wrote); the names of the shards left."""
    for name in os.listdir(shards):
        if name.startswith(TEMPORARY):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=shards)
    counts = db.shard_counts()
    marked = db.marked_shards()
    runs: set[str] | None = None
    left = []
    for _, name in shard_files(shards):
        if name not in counts:
            runs = db.run_ids() if runs is None else runs
            if stats_run(shards, name) in runs:
                remove_shard(shards, name)
                continue
        elif name in marked and stats_samples(shards, name) != counts[name][0]:
            rewrite_shard(shards, name, db.shard_members(name), counts[name], fsync=fsync)
        left.append(name)
    # rewritten (or gone): the marks cleared once the stats files say the new counts
    db.unmark_shards({name: counts[name][0] for name in marked})
    return left


def mend_folder(folder: DataFolder, db: Database, *, fsync: bool) -> None:
    """`mend_shards` in the folder's `shards`, if it has one: at a run's end, whatever its
    layout (the shards its commits and forgotten rows marked, each rewritten once), and
    by `check --repair`. Raises OSError, sqlite3.Error."""
    try:
        shards = folder.folder(SHARDS_DIR, create=False)
    except StorageError:
        return  # no shards folder: no shard to mend
    mend_shards(shards, db, fsync=fsync)


def stats_samples(shards: int, name: str) -> int | None:
    """The samples a shard's stats file counts (None when unreadable)."""
    stats = _stats(shards, name)
    samples = stats.get("samples")
    return samples if isinstance(samples, int) else None


def _stats(shards: int, name: str) -> dict[str, Any]:
    stem = name.split(".", 1)[0]
    try:
        with open(os.open(f"{stem}_stats.json", READ, dir_fd=shards), "rb") as stream:
            found = json.load(stream)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def rewrite_shard(
    shards: int, name: str, keep: Collection[str], count: tuple[int, int], *, fsync: bool
) -> None:
    """Rewrite shard `name` holding only the samples whose members are in `keep` (the
    steps in the module's text); `count` is its (samples, bytes) in the index."""
    stem = name.split(".", 1)[0]
    fmt = format_of(name)
    moves: list[tuple[str, str]] = []
    try:
        with open(os.open(name, READ, dir_fd=shards), "rb") as source:
            info = os.fstat(source.fileno())
            with _temporary(shards, partial_name(name), fsync) as out:
                fmt.copy(source, out, keep)
        os.utime(partial_name(name), ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=shards)
        table = _table(shards, name)
        if table is not None:
            rows = [row for row in table_rows(shards, name, full=True) if row["member"] in keep]
            with _temporary(shards, partial_name(table), fsync) as out:
                _write_rows(table, rows, out)
            moves.append((partial_name(table), table))
        moves.append((partial_name(name), name))
        stats = {**_stats(shards, name), "samples": count[0], "bytes": count[1]}
        stats_name = f"{stem}_stats.json"
        with _temporary(shards, partial_name(stats_name), fsync) as out:
            out.write(json.dumps(stats, indent=1, sort_keys=True).encode())
        moves.append((partial_name(stats_name), stats_name))  # the mark cleared last
        for temporary, final in moves:
            os.rename(temporary, final, src_dir_fd=shards, dst_dir_fd=shards)
        if fsync:
            os.fsync(shards)
    finally:
        for left in (partial_name(name), *(t for t, _ in moves)):
            with contextlib.suppress(OSError):
                os.unlink(left, dir_fd=shards)


def _table(shards: int, name: str) -> str | None:
    """A tar's metadata table beside it (None for a Parquet shard, its own table)."""
    if not name.endswith(".tar"):
        return None
    stem = name[: -len(".tar")]
    for table in (f"{stem}.jsonl", f"{stem}.parquet"):
        if lstat(shards, table) is not None:
            return table
    return None


def _write_rows(table: str, rows: Sequence[Mapping[str, Any]], out: BinaryIO) -> None:
    if table.endswith(".jsonl"):
        for row in rows:
            out.write(json.dumps(row, sort_keys=True).encode() + b"\n")
        return
    from imgflow.local.layouts.parquet import write_table

    write_table(rows, out)


@contextlib.contextmanager
def _temporary(folder: int, name: str, fsync: bool) -> Iterator[BinaryIO]:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)
    fd = os.open(name, CREATE, 0o644, dir_fd=folder)
    with open(fd, "wb") as out:
        yield out
        out.flush()
        if fsync:
            os.fsync(out.fileno())
