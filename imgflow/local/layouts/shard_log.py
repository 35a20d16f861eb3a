"""An open shard's samples kept on disk beside it, not in memory.

What a shard's commit needs of each sample (its record, when it finished, its member, its
item metadata and its stored size) is appended to a log file in the folder of the shard's
temporary: one pickled list of entries for each flush of the run's records. The shard's
commit (imgflow/local/layouts/shards.py, in this process or, with --workers, in the
coordinator's) reads it back a list at a time, so the memory a shard layout holds does
not grow with the shard's size (10,000 records were 11-13 MB of objects, held by each
worker and pickled whole to the coordinator).

The log is a temporary like the shard: never fsynced (a killed run's tmp folder is swept,
and its samples are fetched again), removed with the shard. Entries not yet written stay
in memory (`pending`); a write that fails (a full disk) is cut back to the last whole
list, so every sample appended is still read back once, from the file or from memory.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import io
import operator
import os
import pickle
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from imgflow.engine.plan import meta_view
from imgflow.engine.records import ResultRecord
from imgflow.local.layouts.shard_staging import CREATE, READ, write_all

# The reader's buffer: a flush's list of entries is a few hundred KB.
READ_BUFFER = 1 << 18


def _proxy(meta: MappingProxyType[str, Any]) -> tuple[Any, tuple[dict[str, Any]]]:
    return meta_view, (dict(meta),)


# An item's metadata is a read-only view (`MappingProxyType`), which pickle cannot take
# as it is: it is written as its dict, and read back as a view of it.
_TYPES = copyreg.dispatch_table | {MappingProxyType: _proxy}


# A record is written as the tuple of its fields: pickle takes a frozen dataclass through
# Python code for each field, both ways (3.4 us a record each way, against 0.9 and 2.0 for
# its tuple and `ResultRecord(*fields)`, a run's records written once and read twice).
_values = operator.attrgetter(*(f.name for f in dataclasses.fields(ResultRecord)))
_Row = tuple[tuple[Any, ...], float, str, Mapping[str, Any], int]


def _dumps(entries: list[Entry]) -> bytes:
    rows: list[_Row] = [(_values(e.record), e.finished, e.member, e.meta, e.size) for e in entries]
    out = io.BytesIO()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _TYPES
    pickler.dump(rows)
    return out.getvalue()


def _loads(stream: Any) -> list[Entry]:
    rows: list[_Row] = pickle.load(stream)
    return [
        Entry(ResultRecord(*values), finished, member, meta, size)
        for values, finished, member, meta, size in rows
    ]


class Entry(NamedTuple):
    """One sample of a shard, as its commit needs it."""

    record: ResultRecord
    finished: float  # when its record was made (the report's rate chart)
    member: str  # its member in the shard
    meta: Mapping[str, Any]  # its item's metadata
    size: int  # its stored size


class SampleLog:
    """The log of the shard being written: `add`, then `flush` (one write each)."""

    def __init__(self, folder: int, name: str) -> None:
        self.name = name
        self.fd = os.open(name, CREATE, 0o600, dir_fd=folder)
        self.pending: list[Entry] = []
        self.end = 0  # the bytes of whole lists written
        self.count = 0  # the samples added

    def add(self, entry: Entry) -> None:
        self.pending.append(entry)
        self.count += 1

    def flush(self) -> None:
        """Write the pending entries as one list (raises OSError; then they stay
        pending and the file is cut back to its whole lists)."""
        if not self.pending:
            return
        data = _dumps(self.pending)
        try:
            write_all(self.fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.end)
                os.lseek(self.fd, self.end, os.SEEK_SET)
            raise
        self.end += len(data)
        self.pending = []

    def close(self) -> None:
        """Write what is pending and close the file (raises OSError)."""
        try:
            self.flush()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Close the file, writing nothing more (its shard is dropped)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def entries(self, folder: int) -> Iterator[list[Entry]]:
        """Every sample added, written or pending, a list at a time (a file that cannot
        be read back gives only what is pending)."""
        with contextlib.suppress(OSError):
            yield from read_log(folder, self.name, self.end)
        if self.pending:
            yield list(self.pending)


def read_log(folder: int, name: str, end: int | None = None) -> Iterator[list[Entry]]:
    """The entries of the log `name` in `folder`, a list at a time (up to `end` bytes)."""
    fd = os.open(name, READ, dir_fd=folder)
    with open(fd, "rb", buffering=READ_BUFFER) as stream:
        while end is None or stream.tell() < end:
            try:
                chunk = _loads(stream)
            except EOFError:
                return
            yield chunk
