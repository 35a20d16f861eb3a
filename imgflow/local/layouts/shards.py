"""The shard layouts' common part: samples gathered into shards committed whole.

`<data-dir>/shards/<NNNNN>.<suffix>` (a WebDataset tar, imgflow/local/layouts/webdataset.py,
or a Parquet file, parquet.py), numbered on from what the folder and the index hold, with
`<NNNNN>_stats.json` (counts by outcome and failure kind, bytes, time) and, for a tar, its
metadata table beside it.

How a shard is written (`ShardStore`):

- a fetched image is staged when the engine commits it (its bytes in memory, or in a part
  file in the run's tmp folder when large); nothing is in a shard yet;
- when its record reaches the runner (`record`), the sample is appended to the open
  shard, a temporary file in the run's tmp folder (so the shard's bytes are on disk, not
  in memory), and what its commit needs (its record, member, item metadata and size) to
  the shard's log beside it (imgflow/local/layouts/shard_log.py: on disk too, read back a
  list at a time by the commit); a sample whose record is lost (an interrupt) never
  enters a shard;
- a shard with `shard_size` samples, or the last one of a run (also an interrupted run),
  is committed: finished, fsynced, its sidecars written, then in one index transaction
  the rows of its samples (`images.shard`, `images.member`) and its `shards` row are
  written and the files renamed to their final names before the commit
  (`Database.record_shard`). A shard at a final name is whole; a killed run leaves only
  temporary files, swept with its tmp folder, and its uncommitted samples are fetched
  again by the next run. A kill between the rename and the commit leaves a shard the
  index does not list: the next run removes it before storing (`bind`).
- A sample's key is the digest of its URL, so it is the same in every shard; a refreshed
  image goes into a new shard and its row moves there; the old shard is marked in that
  commit and rewritten without the old version at the run's end
  (imgflow/local/layouts/shard_rewrite.py), so a sample is in one shard.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from imgflow.engine.batch import failed_record
from imgflow.engine.outcome import store_failure
from imgflow.engine.plan import Item
from imgflow.engine.records import ResultRecord
from imgflow.engine.samples import extension as extension  # re-exported
from imgflow.engine.samples import record_row
from imgflow.errors import UsageError
from imgflow.local.folder import DataFolder
from imgflow.local.index import Database, ShardRows, retried, sqlite_errors
from imgflow.local.layouts.files import IMAGES_DIR
from imgflow.local.layouts.shard_folder import known_samples, lstat
from imgflow.local.layouts.shard_format import (
    SHARDS_DIR,
    Sample,
    ShardFormat,
    ShardWriter,
    have_pyarrow,
    shard_number,
)
from imgflow.local.layouts.shard_log import Entry, SampleLog, read_log
from imgflow.local.layouts.shard_reader import ShardReader
from imgflow.local.layouts.shard_rewrite import mend_shards
from imgflow.local.layouts.shard_staging import CREATE, Staged, Staging, counter, opened
from imgflow.local.safefs import StorageError, explain, subfolder
from imgflow.local.store import FileStore

DEFAULT_SHARD_SIZE = 10_000
_Timed = tuple[ResultRecord, float]  # a record and when it finished
FULL_SECONDS = 0.5
FULL_WAIT = 0.05
# The open shard's file buffer: its members reach the file in writes of this size (one
# write call for tens of small images, not one or more for each of them).
SHARD_BUFFER = 1 << 20
# A stored image is held (in memory, or a part file when large) until its record is flushed
# into the open shard: runs flush at least every FLUSH_RECORDS records (about 4 MB of small
# images), not only every second, so what is held does not grow with the run's speed.
FLUSH_RECORDS = 256


class ShardLayout:
    """A layout of shards of one format, `shard_size` samples each."""

    def __init__(self, fmt: ShardFormat, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        self.fmt = fmt
        self.shard_size = shard_size

    def prepare(self, folder: DataFolder) -> None:
        """Refuse a `shards` folder that is a link or cannot be written (UsageError),
        before the run writes anything."""
        path = folder.path / SHARDS_DIR
        if path.is_symlink():
            raise UsageError(
                f"{path} is a symbolic link: imgflow writes shards only into a real folder"
            )
        try:
            fd = folder.folder(SHARDS_DIR)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
        if not os.access(".", os.W_OK, dir_fd=fd):
            raise UsageError(f"{path} is not writable: fix its permissions")

    def open_run(self, folder: DataFolder, tmp: int, *, fsync: bool) -> ShardStore:
        """The run's store: shards written in `tmp`, renamed into `shards`."""
        return ShardStore(self, folder, folder.folder(SHARDS_DIR), tmp, fsync=fsync)

    def open_reader(self, folder: DataFolder) -> ShardReader:
        """A reader of every shard in `shards` (of any format)."""
        return ShardReader(folder)


@dataclass
class _Open:
    """The shard being written: its temporary file, its writer, the log of its samples
    (what their commit needs, on disk: imgflow/local/layouts/shard_log.py)."""

    name: str  # the temporary's name in tmp
    stream: BinaryIO
    writer: ShardWriter
    log: SampleLog
    urls: list[str] = field(default_factory=list)  # its samples' URLs, in the log's order
    size: int = 0


# A tar's metadata table: Parquet with pyarrow, else JSON lines.
TABLE_SUFFIXES = (".parquet", ".jsonl")


def _table_name(shard: str, suffix: str) -> str:
    """The temporary name of the metadata table of the shard's temporary `shard`."""
    return f"{shard}.meta{suffix}"


def _log_name(shard: str) -> str:
    """The name of the sample log of the shard's temporary `shard`."""
    return f"{shard}.log"


def sample_rows(entries: Iterable[Sequence[Entry]]) -> Iterator[dict[str, Any]]:
    """A shard's metadata rows (each sample's `.json` member and its member), one at a
    time, from its log's lists of entries."""
    for chunk in entries:
        for entry in chunk:
            row = record_row(entry.record, entry.size, entry.meta)
            row["member"] = entry.member
            yield row


@dataclass
class WrittenShard:
    """A shard written whole and fsynced in a tmp folder, not yet committed: what its
    commit needs (`ShardStore.publish`). Picklable: a worker process sends it to the
    coordinator, which commits it."""

    name: str  # its temporary name in the tmp folder
    # a tar's metadata table (temporary name, final suffix): written at the commit
    table: tuple[str, str] | None
    log: str  # its samples' log beside it (shard_log.py), read by the commit
    urls: list[str]  # its samples' URLs, in the log's order
    size: int
    mtime: int
    stats: dict[str, Any]  # its stats file's fields but its final name


class ShardStore:
    """A run's store of samples gathered into shards (see the module's text)."""

    inline = True  # staging is a copy in memory (or a page-cache write of a large image)

    def __init__(
        self, layout: ShardLayout, folder: DataFolder, shards: int, tmp: int, *, fsync: bool
    ) -> None:
        self.fmt = layout.fmt
        self.shard_size = layout.shard_size
        self.folder = folder
        self.shards = shards
        self.tmp = tmp
        self.fsync = fsync
        self._names = counter()
        self._lock = threading.Lock()
        self._sealed = False
        self._staged: dict[str, Staged] = {}
        self._open: _Open | None = None
        self._next = 0
        self._counts: Counter[str] = Counter()
        self._started = time.time()
        self._known: dict[str, tuple[str, int, str]] | None = None
        self._images: FileStore | bool | None = None  # False: no images folder
        self.db: Database | None = None
        self.run_id = ""
        # Where a finished shard goes to be committed (None: `publish`, this process is
        # the index's writer; a worker process sends it to its coordinator) and where
        # records with no shard go (None: `save`).
        self.commit_to: Callable[[WrittenShard], list[_Timed]] | None = None
        self.save_to: Callable[[Sequence[_Timed]], None] | None = None

    # the engine's ObjectStore port

    def open(self, key: str) -> Staging:
        """A writer whose commit stages the image for the next shard."""
        return Staging(key, self.tmp, self._names, self._stage)

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Stage `data` for the next shard."""
        self._stage(key, bytes(data), None, len(data))

    def _stage(self, key: str, data: bytes | None, part: str | None, size: int) -> None:
        with self._lock:
            if self._sealed:
                if part is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(part, dir_fd=self.tmp)
                raise OSError(errno.EINTR, "the run was interrupted")
            old = self._staged.pop(key, None)
            self._staged[key] = Staged(data, part, size)
        if old is not None and old.part is not None:
            with contextlib.suppress(OSError):
                os.unlink(old.part, dir_fd=self.tmp)

    # the runner's side

    def bind(self, db: Database, run_id: str) -> None:
        """Start storing for `run_id`: remove shards the index never committed (a kill
        between a shard's rename and its commit), number on from what is there."""
        self.db = db
        self.run_id = run_id
        listed = db.shard_names()
        numbers = [n for n in (shard_number(name) for name in listed) if n is not None]
        left = mend_shards(self.shards, db, fsync=self.fsync)
        numbers += [n for n in (shard_number(name) for name in left) if n is not None]
        self._next = max(numbers, default=-1) + 1

    def intact(self, key: str, size: int, mtime_ns: int | None, sha256: str) -> int | None:
        """The shard's time when `key`'s sample is in a committed shard with this size and
        sha256 (as its shard's table says); else, for a row of the files layout (an image
        stored by a run of that layout), what the files layout says; else None."""
        if self._known is None:
            self._known = known_samples(self.shards)
        found = self._known.get(key)
        if found is None and self._files() is not None:
            return self._files_intact(key, size, mtime_ns, sha256)
        if found is None or found[1] != size or found[2] != sha256:
            return None
        info = lstat(self.shards, found[0])
        return None if info is None else info.st_mtime_ns

    def _files(self) -> FileStore | None:
        """The files layout's images of this folder, when there are any."""
        if self._images is None:
            try:
                images = self.folder.folder(IMAGES_DIR, create=False)
            except StorageError:
                self._images = False
            else:
                self._images = FileStore(images, self.tmp, fsync=False)
        return self._images if isinstance(self._images, FileStore) else None

    def _files_intact(self, key: str, size: int, mtime_ns: int | None, sha256: str) -> int | None:
        files = self._files()
        return None if files is None else files.intact(key, size, mtime_ns, sha256)

    def written(self, keys: Iterable[str]) -> dict[str, int]:
        """Nothing: a shard's samples are indexed when it is committed."""
        return {}

    def settle(self, keys: Iterable[str]) -> None:
        """Nothing: a committed shard's samples are settled by its commit."""

    def seal(self) -> None:
        """Stage nothing more (an interrupt); what is staged may still be committed."""
        with self._lock:
            self._sealed = True

    def discard_unsettled(self, keep: Collection[str] = ()) -> list[str]:
        """Drop the staged images and the uncommitted shard (only temporary files)."""
        with self._lock:
            staged, self._staged = self._staged, {}
        for entry in staged.values():
            if entry.part is not None:
                with contextlib.suppress(OSError):
                    os.unlink(entry.part, dir_fd=self.tmp)
        keys = list(staged)
        if self._open is not None:
            keys += [e.record.key or "" for c in self._open.log.entries(self.tmp) for e in c]
            self._drop_open()
        return keys

    def close(self) -> None:
        """Drop what was never committed (the folders' owner closes their descriptors)."""
        self.discard_unsettled()
        if isinstance(self._images, FileStore):
            self._images.close()

    def record(
        self,
        records: Sequence[ResultRecord],
        finished: Sequence[float],
        metas: Mapping[str, Mapping[str, Any]],
        *,
        final: bool = False,
    ) -> None:
        """Save `records`: the written ones' samples go into the open shard (committed
        with their rows when full, or `final`), the others are saved now."""
        now: list[_Timed] = []
        for record, at in zip(records, finished, strict=True):
            self._count(record)
            with self._lock:
                staged = self._staged.pop(record.key, None) if record.key else None
            if staged is None or not record.outcome.wrote:
                now.append((record, at))
                continue
            failed = self._append(record, at, staged, metas.get(record.url, {}))
            if failed:
                now.extend(failed)
            elif self._open is not None and self._open.log.count >= self.shard_size:
                now.extend(self._commit())
        if self._open is not None:
            now.extend(self._flush_open())
        if final and self._open is not None and self._open.log.count:
            now.extend(self._commit())
        if now:
            self.save(now)

    def _count(self, record: ResultRecord) -> None:
        self._counts[record.outcome.value] += 1
        if record.failure_kind is not None:
            self._counts["failure:" + str(record.failure_kind.value)] += 1

    def _append(
        self, record: ResultRecord, at: float, staged: Staged, meta: Mapping[str, Any]
    ) -> list[_Timed]:
        """Append the sample to the open shard; on a full disk, its record as a failure
        and the open shard abandoned (its samples fail too, see `_fail_open`)."""
        try:
            shard = self._open or self._start()
            sample = Sample(
                url=record.url,
                key=record.key or "",
                data=staged.data,
                part=staged.part,
                size=staged.size,
                sha256=record.sha256 or "",
                content_type=record.content_type,
                etag=record.etag,
                last_modified=record.last_modified,
                meta=meta,
                # as the engine read them from the image's header (and the index has them)
                width=record.width,
                height=record.height,
            )
            with opened(self.tmp, staged) as stream:
                member = shard.writer.add(sample, stream)
        except OSError as exc:
            failed = [(self._failed(record, exc), at)]
            return failed + (self._fail_open(exc) if self._open is not None else [])
        finally:
            if staged.part is not None:
                with contextlib.suppress(OSError):
                    os.unlink(staged.part, dir_fd=self.tmp)
        shard.log.add(Entry(record, at, member, meta, staged.size))
        shard.urls.append(record.url)
        shard.size += staged.size
        return []

    def _failed(self, record: ResultRecord, exc: OSError) -> ResultRecord:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise explain(self.folder.path / "tmp" / self.run_id, exc) from None
        failure = store_failure(record.url, exc, record.status_code, record.attempts)
        return failed_record(Item(record.url, record.key or "", path=record.path), failure)

    def _start(self) -> _Open:
        name = f"shard-{next(self._names)}{self.fmt.suffix}"
        fd = os.open(name, CREATE, 0o644, dir_fd=self.tmp)
        stream = open(fd, "w+b", buffering=SHARD_BUFFER)  # noqa: SIM115 (closed by _drop_open or _commit)
        try:
            log = SampleLog(self.tmp, _log_name(name))
        except OSError:
            stream.close()
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.tmp)
            raise
        self._open = _Open(name, stream, self.fmt.start(stream), log)
        return self._open

    def _flush_open(self) -> list[_Timed]:
        shard = self._open
        assert shard is not None
        try:
            shard.writer.flush()
            shard.log.flush()
        except OSError as exc:
            return self._fail_open(exc)
        return []

    def _fail_open(self, exc: OSError) -> list[_Timed]:
        """The open shard could not be written (a full disk): its samples fail."""
        shard = self._open
        assert shard is not None
        failed = [
            (self._failed(e.record, exc), e.finished)
            for chunk in shard.log.entries(self.tmp)
            for e in chunk
        ]
        self._drop_open()
        return failed

    def _drop_open(self) -> None:
        shard, self._open = self._open, None
        if shard is None:
            return
        with contextlib.suppress(Exception):
            shard.stream.close()
        with contextlib.suppress(OSError):
            shard.log.abandon()
        for name in (shard.name, shard.log.name):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.tmp)

    def _commit(self) -> list[_Timed]:
        """Finish the open shard in tmp (fsynced, its table beside it) and hand it to
        `commit_to` (`publish` here; a worker process's coordinator with --workers).
        Records that must be saved as failures instead (a full disk)."""
        shard = self._open
        assert shard is not None
        try:
            written = self._finish(shard)
        except OSError as exc:
            return self._fail_open(exc)
        self._open = None
        self._counts.clear()
        self._started = time.time()
        if self.commit_to is not None:
            return self.commit_to(written)
        return self.publish(written, self.tmp)

    def _finish(self, shard: _Open) -> WrittenShard:
        """The shard's format finished and fsynced in tmp, its stream closed; its table (a
        tar's) is written by the commit (`publish`). Raises OSError."""
        shard.writer.close()
        shard.log.close()
        shard.stream.flush()
        if self.fsync:
            os.fsync(shard.stream.fileno())
        mtime = os.fstat(shard.stream.fileno()).st_mtime_ns
        with contextlib.suppress(Exception):
            shard.stream.close()
        now = time.time()
        stats = {
            "run_id": self.run_id,
            "samples": shard.log.count,
            "bytes": shard.size,
            "counts": dict(sorted(self._counts.items())),
            "start_time": self._started,
            "end_time": now,
            "duration": now - self._started,
        }
        return WrittenShard(shard.name, None, shard.log.name, shard.urls, shard.size, mtime, stats)

    def _table(
        self, rows: Iterable[dict[str, Any]], folder: int, shard: str
    ) -> tuple[str, str] | None:
        """A tar's metadata table of `rows` written in `folder` beside the shard's
        temporary `shard`: (its temporary name, its final suffix)."""
        if not self.fmt.sidecar:
            return None
        if have_pyarrow():
            from imgflow.local.layouts.parquet import write_table

            name = _table_name(shard, ".parquet")
            with self._temporary(folder, name) as out:
                write_table(rows, out)
            return name, ".parquet"
        name = _table_name(shard, ".jsonl")
        with self._temporary(folder, name) as out:
            for row in rows:
                out.write(json.dumps(row, sort_keys=True).encode() + b"\n")
        return name, ".jsonl"

    def publish(self, written: WrittenShard, source: int) -> list[_Timed]:
        """Commit a shard written whole in the folder `source` (this run's tmp, or a worker
        process's in it): the next number, its stats file, then its rows (read from its
        log, a list at a time) and `shards` row with the renames into `shards/` in one
        index transaction. Only this store numbers shards (the run's one index writer), so
        no two shards share a number. Records that must be saved as failures instead (a
        full disk)."""
        failed = self._tabled(written, source)
        if failed:
            return failed
        db = self.db
        assert db is not None, "bind() first"
        number = self._next
        stem = f"{number:05d}"
        final = f"{stem}{self.fmt.suffix}"
        moves: list[tuple[str, str]] = []
        if written.table is not None:
            moves.append((written.table[0], f"{stem}{written.table[1]}"))
        stats = f"{written.name}.stats.json"
        try:
            with self._temporary(source, stats) as out:
                body = {**written.stats, "shard": final}
                out.write(json.dumps(body, indent=1, sort_keys=True).encode())
        except OSError as exc:
            return self._drop_written(written, source, exc, [*moves, (stats, "")])
        # the tables first: a shard at its final name always has them beside it
        moves += [(stats, f"{stem}_stats.json"), (written.name, final)]
        published: list[str] = []
        # the shards these samples leave (a refresh, a retry): recounted in the commit so
        # marked, rewritten without them at the run's end (a row forgotten as not intact
        # marked its shard when it was: `Database.forget`; shard_rewrite.py)
        with sqlite_errors(db.path):
            holding = db.shards_holding(written.urls)
        left = sorted(holding - {final})
        known: list[tuple[str, int, str]] = []  # (key, size, sha256), when `_known` is read

        def rows() -> Iterator[ShardRows]:
            known.clear()
            for chunk in read_log(source, written.log):
                if self._known is not None:
                    known.extend((e.record.key or "", e.size, e.record.sha256 or "") for e in chunk)
                places = {e.record.key or "": (final, e.member) for e in chunk}
                yield [e.record for e in chunk], [e.finished for e in chunk], places

        def rename() -> None:
            db.recount_shards(left)
            for temporary, name in moves:
                os.rename(temporary, name, src_dir_fd=source, dst_dir_fd=self.shards)
                published.append(name)
            if self.fsync:
                os.fsync(self.shards)

        try:
            with sqlite_errors(db.path):
                retried(
                    lambda: db.record_shard(
                        self.run_id,
                        rows(),
                        shard=final,
                        samples=len(written.urls),
                        size=written.size,
                        mtime=written.mtime,
                        publish=rename,
                    ),
                    "full",
                    seconds=FULL_SECONDS,
                    pause=FULL_WAIT,
                    most=FULL_WAIT,
                )
        except BaseException as exc:
            for name in published:  # never a shard at a final name without its rows
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self.shards)
            failed = self._drop_written(written, source, exc, moves)
            if isinstance(exc, OSError):
                return failed
            raise
        with contextlib.suppress(OSError):
            os.unlink(written.log, dir_fd=source)
        self._next = number + 1
        if self._known is not None:
            for key, size, sha256 in known:
                self._known[key] = (final, size, sha256)
        return []

    def commit_from(self, folder: str, written: WrittenShard) -> None:
        """Commit a shard a worker process wrote in its `folder` of this run's tmp folder;
        its samples' records are saved as failures if it cannot be (a full disk)."""
        try:
            source = subfolder(self.tmp, folder, create=False)
        except OSError as exc:
            raise explain(self.folder.path / "tmp" / self.run_id / folder, exc) from None
        try:
            failed = self.publish(written, source)
        finally:
            os.close(source)
        if failed:
            self.save(failed)

    def _tabled(self, written: WrittenShard, source: int) -> list[_Timed]:
        """A tar given its metadata table, written beside it in `source` by the commit
        (so with --workers only the coordinator imports pyarrow for the tables); records
        that must be saved as failures instead (a full disk)."""
        if not self.fmt.sidecar:
            return []
        rows = sample_rows(read_log(source, written.log))
        try:
            written.table = self._table(rows, source, written.name)
        except OSError as exc:
            tables = [(_table_name(written.name, suffix), "") for suffix in TABLE_SUFFIXES]
            return self._drop_written(written, source, exc, tables)
        return []

    def _drop_written(
        self,
        written: WrittenShard,
        source: int,
        exc: BaseException,
        temporaries: Sequence[tuple[str, str]],
    ) -> list[_Timed]:
        """A shard that could not be committed: its temporaries removed; on an OSError
        (a full disk) its samples' records as failures."""
        entries: list[Entry] = []
        if isinstance(exc, OSError):
            with contextlib.suppress(OSError):  # (unreadable: they stay pending in the index)
                entries = [e for chunk in read_log(source, written.log) for e in chunk]
        for temporary in {written.name, written.log, *(t for t, _ in temporaries)}:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=source)
        if not isinstance(exc, OSError):
            return []
        return [(self._failed(e.record, exc), e.finished) for e in entries]

    def save(self, timed: Sequence[_Timed]) -> None:
        """Save records with no shard (failures, skips) in the index."""
        if self.save_to is not None:
            self.save_to(timed)
            return
        db = self.db
        assert db is not None, "bind() first"
        plain = [r for r, _ in timed]
        times = [t for _, t in timed]
        with sqlite_errors(db.path):
            retried(
                lambda: db.record(self.run_id, plain, times),
                "full",
                seconds=FULL_SECONDS,
                pause=FULL_WAIT,
                most=FULL_WAIT,
            )

    @contextlib.contextmanager
    def _temporary(self, folder: int, name: str) -> Iterator[BinaryIO]:
        fd = os.open(name, CREATE, 0o644, dir_fd=folder)
        with open(fd, "wb") as out:
            yield out
            out.flush()
            if self.fsync:
                os.fsync(out.fileno())
