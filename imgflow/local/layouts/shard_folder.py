"""The `shards` folder on disk: its shard files by number, a shard's run (its stats file),
its metadata rows, and removing a shard with its sidecars (the recovery of a shard the
index never listed, `ShardStore.bind`)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from typing import Any

from imgflow.local.layouts.shard_format import shard_number

READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def lstat(folder: int, name: str) -> os.stat_result | None:
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def stats_run(shards: int, name: str) -> str | None:
    """The run that wrote a shard, as its stats file says (None when unreadable)."""
    stem = name.split(".", 1)[0]
    try:
        with open(os.open(f"{stem}_stats.json", READ, dir_fd=shards), "rb") as stream:
            run = json.load(stream).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run if isinstance(run, str) else None


def remove_shard(shards: int, name: str) -> None:
    stem = name.split(".", 1)[0]
    for each in (name, f"{stem}.jsonl", f"{stem}.parquet", f"{stem}_stats.json"):
        with contextlib.suppress(OSError):
            os.unlink(each, dir_fd=shards)


def shard_files(shards: int) -> list[tuple[int, str]]:
    """The shard files of the folder by number (a tar's `.parquet` table is not one)."""
    names = set(os.listdir(shards))
    found = []
    for name in names:
        number = shard_number(name)
        if number is None:
            continue
        if name.endswith(".parquet") and f"{name[:-8]}.tar" in names:
            continue  # the metadata table beside a tar
        found.append((number, name))
    return sorted(found)


def known_samples(shards: int) -> dict[str, tuple[str, int, str]]:
    """key -> (shard, bytes, sha256) from the shards' tables, the newest shard winning."""
    known: dict[str, tuple[str, int, str]] = {}
    for _, name in shard_files(shards):
        with contextlib.suppress(Exception):
            for row in table_rows(shards, name):
                known[str(row["key"])] = (name, int(row["bytes"]), str(row["sha256"]))
    return known


def table_rows(shards: int, name: str, *, full: bool = False) -> Iterator[Mapping[str, Any]]:
    """A shard's metadata rows: its table beside it (a tar's), or the shard itself (every
    column but the image with `full`, else those a skip needs)."""
    stem = name.split(".", 1)[0]
    if name.endswith(".tar"):
        if lstat(shards, f"{stem}.jsonl") is not None:
            with open(os.open(f"{stem}.jsonl", READ, dir_fd=shards), "rb") as stream:
                for line in stream:
                    yield json.loads(line)
            return
        name = f"{stem}.parquet"
    from imgflow.local.layouts.parquet import read_rows

    with open(os.open(name, READ, dir_fd=shards), "rb") as stream:
        yield from read_rows(stream, full=full)
