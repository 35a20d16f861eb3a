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
def store(tmp_path: Path) -> Iterator[FileStore]:
    with file_store(tmp_path) as found:
        yield found


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
    """Record ("handed", key), ("sync", "") and ("renamed", key) in `events`, in order."""
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
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    keys = [f"b/{i}.gif" for i in range(10)]
    results = store_all(store, keys)
    assert all(isinstance(r, str) for r in results), results
    fsynced = [what for kind, what in events if kind == "fsync"]
    assert len(fsynced) == len(keys) and all(name.endswith(".part") for name in fsynced)
    for key in keys:
        renamed = events.index(("renamed", key))
        assert events[renamed - 1][0] == "fsync", f"{key}: renamed without its own fsync"
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
