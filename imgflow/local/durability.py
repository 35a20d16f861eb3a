"""Files made durable and published in groups: one `syncfs` for every file finished meanwhile.

An `fsync` per small file, and the worker thread each one needs, cost as much as the rest of a
small image (bench/: fsync on took 1.8x the time of fsync off). Here a finished part file is
handed to the store's group commit on the event loop and its task waits. One `syncfs` of the
data folder's file system, in a worker thread, covers every file handed over before it
started; the files finished while it runs gather into the next group. When it returns, its
group is published (the store's renames, on the loop) and their tasks go on. A file is at its
final name only once its bytes are on disk, as with its own `fsync`.

`syncfs` is used only on file systems known to implement it (ext4, XFS, Btrfs, F2FS, ZFS,
tmpfs, overlayfs): elsewhere (a FUSE or network mount, where it may return without syncing),
where it fails or is missing (not Linux), and while it is slow (it waits for every other
program's writes to that file system too), each file of the group gets its own `fsync` in
a worker thread, which also reports the error that belongs to that file.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imgflow.engine.handoff import handoff
from imgflow.local.libc import libc


def _libc_syncfs() -> Callable[[int], None] | None:
    """`syncfs(2)` from the C library, raising OSError; None where it does not exist."""
    call = getattr(libc(), "syncfs", None)
    if call is None:
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if call(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


SYNCFS = _libc_syncfs()

# statfs(2) f_type of the file systems whose syncfs writes every dirty file's data and waits
# for it (linux/magic.h; ZFS's from its sources).
SYNCFS_SAFE = frozenset(
    {
        0xEF53,  # ext2/3/4
        0x58465342,  # XFS
        0x9123683E,  # Btrfs
        0xF2F52010,  # F2FS
        0x2FC12FC1,  # ZFS
        0x01021994,  # tmpfs (nothing to write)
        0x794C7630,  # overlayfs (syncs its upper file system)
    }
)


def fs_type(fd: int) -> int | None:
    """The statfs(2) f_type of the file system of `fd`; None where it cannot be read."""
    call = getattr(libc(), "fstatfs", None)
    if call is None:
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs (120 bytes on 64-bit Linux)
    if call(ctypes.c_int(fd), buf) != 0:
        return None
    # f_type is its first field, a C long (__fsword_t)
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def syncfs_for(folder: int) -> Callable[[int], None] | None:
    """`syncfs` when the file system of `folder` is one it is known to sync; else None."""
    if SYNCFS is None or fs_type(folder) not in SYNCFS_SAFE:
        return None
    return SYNCFS


# A syncfs that has not returned after this long is slow (it waits for other programs'
# writes too): its group goes on with a fsync per file, and the next groups too for a while.
SYNC_PATIENCE = 0.25
SLOW_PAUSE = 5.0
# Files of a group that need their own fsync are synced in this many threads at once.
FSYNC_THREADS = 16

# With more than this waiting to be written (system-wide: others' writes), a group is not
# synced whole: syncfs would write all of it first (and hold the disk meanwhile).
DIRTY_LIMIT = 64 << 20


def dirty_bytes() -> int:
    """The memory waiting to be written back, system-wide (/proc/meminfo Dirty and
    Writeback); 0 where it cannot be read."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            text = meminfo.read()
    except OSError:
        return 0
    total = 0
    for line in text.splitlines():
        if line.startswith((b"Dirty:", b"Writeback:")):
            total += int(line.split()[1]) * 1024
    return total


# publish(key, name, mtime_ns, fsync): the store's rename of the closed part file `name`
# once its bytes are on disk (after its own fsync when `fsync` is true: the group's sync
# did not happen); it removes the part when it fails.
Publish = Callable[[str, str, int, bool], Any]
# Discard(name): remove a closed part file that will never be published.
Discard = Callable[[str], None]
_Entry = tuple[str, str, int, "asyncio.Future[None]"]


class GroupCommit:
    """Publishes part files in groups, each after one sync of the file system of `folder`.

    Runs on the event loop of the tasks that hand files over: while one group's sync runs in
    a worker thread, the files finished meanwhile gather into the next group. Publishing
    (the renames) happens on the loop, as without fsync."""

    def __init__(self, folder: int, publish: Publish, discard: Discard) -> None:
        self._folder = folder
        self._publish = publish
        self._discard = discard
        self._syncfs = syncfs_for(folder)
        self._pending: list[_Entry] = []
        self._flushing: asyncio.Task[None] | None = None
        self._syncing: asyncio.Future[bool] | None = None  # the newest syncfs
        self._slow_until = 0.0  # (loop time) no syncfs before this: the last was slow
        self._pool: ThreadPoolExecutor | None = None

    def commit(self, name: str, key: str, mtime_ns: int) -> asyncio.Future[None]:
        """Hand the finished, closed part file `name` over; the future settles once it is
        durable and published at `key` (or with the error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((name, key, mtime_ns, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return future

    def close(self) -> None:
        """Discard the files handed over and never published (after the loop: the tasks
        that waited for them are gone)."""
        group, self._pending = self._pending, []
        for name, _key, _mtime, _future in group:
            self._discard(name)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _fsync_pool(self) -> ThreadPoolExecutor:
        """The threads that fsync files one by one (made when first needed)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="imgflow-fsync")
        return self._pool

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    synced = await self._synced(loop)
                except BaseException as exc:  # cancelled, or no thread left (an interrupt)
                    self._drop([*group, *self._pending], exc)
                    self._pending = []
                    raise
                if synced:
                    _settle(group, self._publish_all(group))
                    continue
                # Each file's own fsync, FSYNC_THREADS side by side (the file system's
                # journal commits the fsyncs that wait together in one go); the next group
                # does not wait for these.
                pool, settle = self._fsync_pool(), handoff()
                for name, key, mtime_ns, future in group:
                    settle.submit(pool, future, self._publish, key, name, mtime_ns, True)
        finally:
            self._flushing = None

    async def _synced(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether one syncfs made the group durable. False when there is none, when it
        failed, and when it is slow: it waits for every program's writes to that file system
        (a 3 GB copy alongside: over a second), so after SYNC_PATIENCE the group goes on
        with a fsync per file (fast whatever others write) and syncfs is left alone for
        SLOW_PAUSE."""
        if self._syncfs is None or loop.time() < self._slow_until:
            return False
        if dirty_bytes() > DIRTY_LIMIT:
            return False  # a sync now would write all of it, and wait for it
        if self._syncing is not None and not self._syncing.done():
            return False  # a slow one still runs
        self._syncing = syncing = loop.run_in_executor(None, self._sync)
        try:
            return await asyncio.wait_for(asyncio.shield(syncing), SYNC_PATIENCE)
        except TimeoutError:
            self._slow_until = loop.time() + SLOW_PAUSE
            return False

    def _drop(self, group: list[_Entry], exc: BaseException) -> None:
        """Discard `group`'s files; their tasks get the error (or are cancelled with it)."""
        for name, _key, _mtime, future in group:
            self._discard(name)
            if future.done():
                continue
            if isinstance(exc, Exception):
                future.set_exception(OSError(f"not stored: {exc}"))
            else:
                future.cancel()

    def _sync(self) -> bool:
        """One sync of the whole file system; False when it could not be done."""
        assert self._syncfs is not None
        try:
            self._syncfs(self._folder)
        except OSError:
            return False
        return True

    def _publish_all(self, group: list[_Entry]) -> list[OSError | None]:
        """Publish each file of a synced `group`; what became of each (None: published)."""
        outcomes: list[OSError | None] = []
        for name, key, mtime_ns, _future in group:
            try:
                self._publish(key, name, mtime_ns, False)
            except OSError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes


def _settle(group: list[_Entry], outcomes: list[OSError | None]) -> None:
    """The waiting tasks of `group` go on: published, or with the error."""
    for (_name, _key, _mtime, future), error in zip(group, outcomes, strict=True):
        if future.done():  # its task was cancelled meanwhile
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
