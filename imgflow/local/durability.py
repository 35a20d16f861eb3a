"""Files made durable and published in groups: one `syncfs` for every file finished meanwhile.

An `fsync` per small file, and the worker thread each one needs, cost as much as the rest of a
small image (bench/: fsync on took 1.8x the time of fsync off). Here a finished part file is
handed to the store's group commit on the event loop and its task waits. One `syncfs` of the
data folder's file system, in a worker thread, covers every file handed over before it
started; the files finished while it runs gather into the next group. When it returns, its
group is published (the store's renames, on the loop) and their tasks go on. A file is at its
final name only once its bytes are on disk, as with its own `fsync`.

`syncfs` is used only on file systems known to implement it (ext4, XFS, Btrfs, F2FS, ZFS,
tmpfs, overlayfs): elsewhere (a FUSE or network mount, where it may return without syncing)
and where it fails or is missing (not Linux), each file of the group gets its own `fsync`
in a worker thread, which also reports the error that belongs to that file.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable
from typing import Any


def _libc() -> ctypes.CDLL | None:
    """The C library the process runs on (its own symbols); None where it cannot load."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _libc_syncfs() -> Callable[[int], None] | None:
    """`syncfs(2)` from the C library, raising OSError; None where it does not exist."""
    call = getattr(_LIBC, "syncfs", None)
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
    call = getattr(_LIBC, "fstatfs", None)
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

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    synced = self._syncfs is not None and await loop.run_in_executor(
                        None, self._sync
                    )
                except BaseException as exc:  # cancelled, or no thread left (an interrupt)
                    self._drop([*group, *self._pending], exc)
                    self._pending = []
                    raise
                if synced:
                    outcomes = self._publish_all(group, False)
                else:
                    publishing = loop.run_in_executor(None, self._publish_all, group, True)
                    try:
                        outcomes = await publishing
                    except asyncio.CancelledError:  # the thread still owns the group
                        for _name, _key, _mtime, future in group:
                            future.cancel()
                        raise
                for (_name, _key, _mtime, future), error in zip(group, outcomes, strict=True):
                    if future.done():  # its task was cancelled meanwhile
                        continue
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
        finally:
            self._flushing = None

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

    def _publish_all(self, group: list[_Entry], fsync: bool) -> list[OSError | None]:
        """Publish each file of `group`; what became of each (None: published)."""
        outcomes: list[OSError | None] = []
        for name, key, mtime_ns, _future in group:
            try:
                self._publish(key, name, mtime_ns, fsync)
            except OSError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes
