"""Group commit (imgflow/local/groupsync.py, imgflow/local/store.py): a part file is renamed
to its key only after a durable flush that started after the part was written; a failed
flush fails its whole group; without syncfs each part is fsynced, as before."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import imgflow.local.store as store_module
from imgflow.local.groupsync import GroupFlush, syncfs_of
from imgflow.local.store import FileStore

DATA = b"x" * 4096


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for a thread"
        time.sleep(0.001)


def test_a_waiter_that_joins_during_a_flush_waits_for_the_next_one() -> None:
    events: list[str] = []
    release = threading.Event()

    def flush() -> None:
        events.append("start")
        if len(events) == 1:
            release.wait(10)  # the first flush runs until the second waiter has joined
        events.append("end")

    group = GroupFlush(flush)

    def waiter(name: str) -> None:
        group.wait()
        events.append(name)

    first = threading.Thread(target=waiter, args=("first returned",))
    first.start()
    _until(lambda: events == ["start"])
    second = threading.Thread(target=waiter, args=("second returned",))
    second.start()
    _until(lambda: group.joined == 2)
    release.set()
    first.join(10)
    second.join(10)
    ends = [i for i, event in enumerate(events) if event == "end"]
    assert group.flushes == 2 and len(ends) == 2
    assert events.index("second returned") > ends[1]  # after the flush that began after it
    assert events.index("first returned") > ends[0]


def test_a_failed_flush_fails_every_waiter_of_its_group_and_no_other() -> None:
    calls: list[int] = []
    release = threading.Event()

    def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)  # the second group gathers while the first flush runs
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")

    group = GroupFlush(flush)
    outcomes: dict[str, str] = {}

    def waiter(name: str) -> None:
        try:
            group.wait()
            outcomes[name] = "durable"
        except OSError as exc:
            outcomes[name] = errno.errorcode[exc.errno or 0]

    threads = [threading.Thread(target=waiter, args=("a",))]
    threads[0].start()
    _until(lambda: len(calls) == 1)
    for name in ("b", "c"):
        threads.append(threading.Thread(target=waiter, args=(name,)))
        threads[-1].start()
    _until(lambda: group.joined == 3)
    release.set()
    for thread in threads:
        thread.join(10)
    waiter("d")
    assert outcomes == {"a": "durable", "b": "EIO", "c": "EIO", "d": "durable"}
    assert group.flushes == 3


def _store(tmp_path: Path) -> tuple[FileStore, Path]:
    for name in ("images", "tmp"):
        (tmp_path / name).mkdir()
    images = os.open(tmp_path / "images", os.O_RDONLY | os.O_DIRECTORY)
    tmp = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    return FileStore(images, tmp, fsync=True), tmp_path / "tmp"


def _complete_parts(tmp: Path) -> set[str]:
    """The part files of `tmp` whose bytes are all written (renamed ones are gone)."""
    complete = set()
    for entry in os.scandir(tmp):
        try:
            if entry.name.endswith(".part") and entry.stat().st_size == len(DATA):
                complete.add(entry.name)
        except FileNotFoundError:
            pass
    return complete


def _store_many(store: FileStore, count: int) -> None:
    def one(n: int) -> None:
        store.put(f"{n % 7}/{n}.png", DATA, "image/png")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def test_no_part_is_renamed_before_a_flush_that_started_after_it_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    durable: set[str] = set()
    renamed_early: list[str] = []
    tmp_dir = tmp_path / "tmp"

    def recording_syncfs(fd: int) -> Callable[[], None]:
        def flush() -> None:
            covered = _complete_parts(tmp_dir)  # written before this flush started
            time.sleep(0.002)  # let the next group gather
            durable.update(covered)

        return flush

    monkeypatch.setattr(store_module, "syncfs_of", recording_syncfs)
    store, _ = _store(tmp_path)
    place = store.tree.place

    def checked_place(src_dir: int, src: str, key: str) -> None:
        if src not in durable:
            renamed_early.append(src)
        place(src_dir, src, key)

    monkeypatch.setattr(store.tree, "place", checked_place)
    _store_many(store, 200)
    assert renamed_early == []
    assert store._group is not None and 1 < store._group.flushes < 200  # grouped
    assert sum(1 for _ in (tmp_path / "images").rglob("*.png")) == 200
    assert not any(tmp_dir.rglob("*.part"))
    store.close()


def test_without_syncfs_each_part_is_fsynced_before_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "syncfs_of", lambda fd: None)
    synced: set[str] = set()
    renamed_early: list[str] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        fsync(fd)
        synced.add(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store, _ = _store(tmp_path)
    assert store._group is None
    place = store.tree.place

    def checked_place(src_dir: int, src: str, key: str) -> None:
        if src not in synced:
            renamed_early.append(src)
        place(src_dir, src, key)

    monkeypatch.setattr(store.tree, "place", checked_place)
    _store_many(store, 40)
    assert renamed_early == []
    assert len(synced) == 40
    store.close()


def test_a_failed_flush_leaves_nothing_at_the_key_and_no_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> Callable[[], None]:
        def flush() -> None:
            raise OSError(errno.EIO, "Input/output error")

        return flush

    monkeypatch.setattr(store_module, "syncfs_of", failing)
    store, tmp_dir = _store(tmp_path)
    with pytest.raises(OSError) as raised:
        store.put("a/b.png", DATA, "image/png")
    assert raised.value.errno == errno.EIO
    assert not (tmp_path / "images" / "a" / "b.png").exists()
    assert not any(tmp_dir.rglob("*.part"))
    assert store.written(["a/b.png"]) == {}
    store.close()


def test_syncfs_flushes_a_real_file_system(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flush = syncfs_of(fd)
        if flush is None:
            pytest.skip("no syncfs here (not Linux 5.8 or later)")
        (tmp_path / "f").write_bytes(DATA)
        flush()  # no error on a healthy file system
    finally:
        os.close(fd)
