"""With fsync on, finished files are made durable in groups, each file before its rename.

imgflow/local/durability.py hands the part files finished on the loop to one sync of the
file system (`syncfs`) in a worker thread, then renames them. The promise is the one an
`fsync` per file kept: a file is at its final name only once its bytes are on disk. Here
the sync is watched (a wrapper around the real `syncfs`) against the store's own renames,
and its failures are made real ones: a `syncfs` that fails falls back to each file's own
`fsync`, and a file whose own `fsync` fails is never published and its task is told.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imgflow.engine.body import StoreError, StoreSink
from imgflow.local import durability
from imgflow.local.store import FileStore

GIF = b"GIF89a" + b"\x00" * 200


@contextmanager
def file_store(tmp_path: Path) -> Iterator[FileStore]:
    """A FileStore with fsync on over tmp_path/images and tmp_path/tmp."""
    (tmp_path / "images").mkdir()
    (tmp_path / "tmp").mkdir()
    images = os.open(tmp_path / "images", os.O_RDONLY | os.O_DIRECTORY)
    tmp = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    found = FileStore(images, tmp, fsync=True)
    try:
        yield found
    finally:
        found.close()
        os.close(images)
        os.close(tmp)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileStore]:
    """A FileStore with fsync on, on a machine where nothing else waits to be written."""
    monkeypatch.setattr(durability, "dirty_bytes", lambda: 0)
    with file_store(tmp_path) as found:
        yield found


def record_fsyncs(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str]]) -> None:
    """Record ("fsync", the part file's name) in `events` for every os.fsync."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


async def store_one(store: FileStore, key: str, body: bytes) -> str:
    """`body` streamed into `key` through a StoreSink and committed; its sha256."""
    sink = StoreSink(store, key, None)
    await sink.write(body)
    return await sink.commit("image/gif")


def store_all(store: FileStore, keys: list[str]) -> list[BaseException | str]:
    """Each key's body streamed and committed through a StoreSink, all at once on one loop;
    the sha256 of each, or its error."""

    async def main() -> list[BaseException | str]:
        stores = (store_one(store, k, GIF + k.encode()) for k in keys)
        return await asyncio.gather(*stores, return_exceptions=True)

    return asyncio.run(main())


def failing_syncfs(fd: int) -> None:
    raise OSError(errno.EIO, "syncfs failed")


def watch(store: FileStore, events: list[tuple[str, str]], syncfs: object) -> None:
    """Record ("handed", key), ("sync", "") and ("renamed", key) then ("part of KEY",
    its part file's name) in `events`, in order."""
    group = store._group
    assert group is not None
    commit, place = group.commit, store.tree.place

    def handed(name: str, key: str, mtime_ns: int) -> asyncio.Future[None]:
        events.append(("handed", key))
        return commit(name, key, mtime_ns)

    def watched_sync(fd: int) -> None:
        events.append(("sync", ""))
        if callable(syncfs):
            syncfs(fd)

    def renamed(src_dir: int, src: str, key: str) -> None:
        place(src_dir, src, key)
        events.append(("renamed", key))
        events.append(("part of " + key, src))

    group.commit = handed  # type: ignore[method-assign]
    group._syncfs = watched_sync
    store.tree.place = renamed  # type: ignore[method-assign]


def test_every_file_is_synced_after_it_is_handed_over_and_before_it_is_renamed(
    store: FileStore, tmp_path: Path
) -> None:
    if durability.SYNCFS is None:
        pytest.skip("no syncfs in this C library")
    events: list[tuple[str, str]] = []
    watch(store, events, durability.SYNCFS)
    keys = [f"a/{i}.gif" for i in range(40)]
    results = store_all(store, keys)
    assert all(isinstance(r, str) for r in results), results
    for key in keys:
        assert (tmp_path / "images" / key).read_bytes() == GIF + key.encode()
        handed = events.index(("handed", key))
        renamed = events.index(("renamed", key))
        assert ("sync", "") in events[handed:renamed], f"{key} was renamed before a sync"
    syncs = events.count(("sync", ""))
    assert syncs < len(keys) / 4, f"{syncs} syncs for {len(keys)} files: not grouped"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failed_sync_gives_each_file_its_own_fsync_before_its_rename(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    watch(store, events, failing_syncfs)
    record_fsyncs(monkeypatch, events)
    keys = [f"b/{i}.gif" for i in range(10)]
    results = store_all(store, keys)
    assert all(isinstance(r, str) for r in results), results
    fsynced = [what for kind, what in events if kind == "fsync"]
    assert len(fsynced) == len(keys) and all(name.endswith(".part") for name in fsynced)
    for key in keys:
        renamed = events.index(("renamed", key))
        part = dict(events)["part of " + key]
        assert ("fsync", part) in events[:renamed], f"{key}: renamed without its own fsync"
        assert (tmp_path / "images" / key).read_bytes() == GIF + key.encode()


def test_a_file_whose_bytes_cannot_be_made_durable_is_not_published(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    watch(store, events, failing_syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    results = store_all(store, ["c/1.gif", "c/2.gif"])
    assert all(isinstance(r, StoreError) and "Input/output" in str(r) for r in results), results
    assert not (tmp_path / "images" / "c").exists() or not any(
        (tmp_path / "images" / "c").iterdir()
    )
    assert list((tmp_path / "tmp").iterdir()) == []


def test_files_waiting_for_a_sync_when_the_run_is_cancelled_are_discarded(
    store: FileStore, tmp_path: Path
) -> None:
    """An interrupt cancels every task, the group's too: the files it held are removed and
    never renamed, and their tasks end (cancelled), none left waiting."""
    syncing = asyncio.Event()

    async def main() -> list[BaseException | str]:
        loop = asyncio.get_running_loop()
        group = store._group
        assert group is not None

        def slow_sync(fd: int) -> None:
            loop.call_soon_threadsafe(syncing.set)
            import time

            time.sleep(0.5)

        group._syncfs = slow_sync

        tasks = [asyncio.ensure_future(store_one(store, f"d/{i}.gif", GIF)) for i in range(5)]
        await syncing.wait()
        flushing = group._flushing
        assert flushing is not None
        flushing.cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, (StoreError, asyncio.CancelledError)) for r in results), results
    assert not (tmp_path / "images" / "d").exists() or not any(
        (tmp_path / "images" / "d").iterdir()
    )
    assert list((tmp_path / "tmp").iterdir()) == []


def test_on_a_file_system_not_known_to_sync_whole_each_file_gets_its_own_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FUSE or network mount may return from `syncfs` without syncing: only the file
    systems known to implement it are synced whole (here none is known)."""
    monkeypatch.setattr(durability, "SYNCFS_SAFE", frozenset())
    fsynced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    keys = [f"e/{i}.gif" for i in range(6)]
    with file_store(tmp_path) as store:
        results = store_all(store, keys)
    assert all(isinstance(r, str) for r in results), results
    assert len(fsynced) == len(keys) and all(n.endswith(".part") for n in fsynced), fsynced
    for key in keys:
        assert (tmp_path / "images" / key).read_bytes() == GIF + key.encode()


def test_the_data_folders_file_system_type_is_the_one_stat_reads(tmp_path: Path) -> None:
    """The type that decides between one syncfs and an fsync per file is statfs's f_type,
    as coreutils' `stat -f` reads it."""
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = durability.fs_type(fd)
    finally:
        os.close(fd)
    told = subprocess.run(
        ["stat", "-f", "-c", "%t", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert found == int(told.stdout.strip(), 16)


def test_files_waiting_for_their_group_hold_no_descriptor(store: FileStore) -> None:
    """A request's descriptors are its connection and its part file while it is written
    (imgflow/local/descriptors.py): a file handed to its group is closed, so hundreds
    waiting for one sync hold none (with 256 descriptors and 96 in flight, a run stalled)."""
    group = store._group
    assert group is not None

    async def main() -> tuple[int, int]:
        release = asyncio.Event()
        sync_started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def held_sync(fd: int) -> None:
            loop.call_soon_threadsafe(sync_started.set)
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

        group._syncfs = held_sync
        opened = len(os.listdir("/proc/self/fd"))

        tasks = [asyncio.ensure_future(store_one(store, f"f/{i}.gif", GIF)) for i in range(300)]
        await sync_started.wait()
        await asyncio.sleep(0.05)  # every task has handed its file over by now
        waiting = len(os.listdir("/proc/self/fd")) - opened
        release.set()
        done = await asyncio.gather(*tasks)
        return waiting, len(done)

    waiting, stored = asyncio.run(main())
    assert stored == 300
    assert waiting < 10, f"{waiting} descriptors held by files waiting for their sync"


def test_a_slow_sync_does_not_hold_its_group_each_file_gets_its_own_fsync(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A syncfs waits for every program's writes to the file system (another program
    copying 3 GB: over a second, while a small file's fsync took 0.3 ms). A group whose
    sync is slow goes on with a fsync per file, and the groups after it do not wait for
    that sync either."""
    monkeypatch.setattr(durability, "SYNC_PATIENCE", 0.05)
    released, returned = threading.Event(), threading.Event()

    def slow(fd: int) -> None:
        released.wait(5)
        returned.set()

    events: list[tuple[str, str]] = []
    watch(store, events, slow)
    record_fsyncs(monkeypatch, events)

    async def main() -> tuple[list[str], list[str], bool]:
        first = [await store_one(store, "g/0.gif", GIF)]
        later = await asyncio.gather(*(store_one(store, f"h/{i}.gif", GIF) for i in range(5)))
        slow_sync_returned = returned.is_set()
        released.set()
        return first, list(later), slow_sync_returned

    first, later, slow_sync_returned = asyncio.run(main())
    assert len(first) == 1 and len(later) == 5
    assert not slow_sync_returned, "the files waited for the slow sync"
    assert events.count(("sync", "")) == 1, "a sync was started while the slow one ran"
    for key in ["g/0.gif", *(f"h/{i}.gif" for i in range(5))]:
        renamed = events.index(("renamed", key))
        part = dict(events)["part of " + key]
        assert ("fsync", part) in events[:renamed], f"{key}: renamed without its own fsync"
        assert (tmp_path / "images" / key).read_bytes() == GIF


def test_with_much_waiting_to_be_written_a_group_is_not_synced_whole(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program's writes waiting in memory (a large copy): a syncfs would write them
    all before it returns, so each file gets its own fsync instead."""
    monkeypatch.setattr(durability, "dirty_bytes", lambda: 4 << 30)
    events: list[tuple[str, str]] = []
    watch(store, events, durability.SYNCFS)
    record_fsyncs(monkeypatch, events)
    keys = [f"k/{i}.gif" for i in range(5)]
    results = store_all(store, keys)
    assert all(isinstance(r, str) for r in results), results
    assert ("sync", "") not in events
    for key in keys:
        renamed = events.index(("renamed", key))
        part = dict(events)["part of " + key]
        assert ("fsync", part) in events[:renamed], f"{key}: renamed without its own fsync"


def test_what_waits_to_be_written_is_read_from_the_kernel() -> None:
    with open("/proc/meminfo") as meminfo:
        assert "Dirty:" in meminfo.read()
    assert durability.dirty_bytes() >= 0
