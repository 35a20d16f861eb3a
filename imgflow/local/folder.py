"""The data folder: its index, its lock, its temporary folders and its images, link-proof.

```
<data-dir>/imgflow.db     the index and every run's results (imgflow/local/index/)
<data-dir>/imgflow.lock   flock'ed by the run storing images (one at a time per folder)
<data-dir>/tmp/<run-id>/  a run's temporaries; .imgflow-tmp in it is flock'ed while it lives
<data-dir>/images/<key>   the images (the files layout)
<data-dir>/shards/        the shards of a shard layout (imgflow/local/layouts/shards.py)
<data-dir>/runs/<run-id>/ failures.json, report.html
<data-dir>/thumbs/        the report's thumbnails
```

Every command that opens a data folder (run, retry, status, report, check, serve) opens it
here, or checks it with `refuse_linked` first: a link at any of these names is refused.

Concurrent runs on one folder: planning (short SQLite transactions) goes on side by side;
storing images is one run at a time. A run that finds the folder lock taken says which run
holds it (id and pid, as written in the lock file) and waits for it, so two runs never
replace each other's files between a rename and its index row. The kernel releases a lock
when its process ends, however it ends, so a crashed run never blocks the folder and a run in
another PID namespace (a container on the same folder) is seen as alive while it is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from imgflow.local.index import Database
from imgflow.local.safefs import (
    FolderLock,
    StorageError,
    explain,
    open_data_dir,
    open_folder,
    refuse_links,
    remove_tree,
    subfolder,
)

DB_NAME = "imgflow.db"
LOCK_NAME = "imgflow.lock"
TMP_MARKER = ".imgflow-tmp"
_OWN_NAMES = (
    DB_NAME,
    DB_NAME + "-wal",
    DB_NAME + "-shm",
    LOCK_NAME,
    "tmp",
    "images",
    "runs",
    "thumbs",
)


class DataFolder:
    """An open data folder; every name in it is opened without following links."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.is_dir():
            raise StorageError(f"{path} is not a data folder")
        self.fd = open_data_dir(path)
        self._fds: list[int] = []
        try:
            refuse_links(self.fd, _OWN_NAMES, path)
        except BaseException:
            os.close(self.fd)
            raise

    def database(self, *, readonly: bool = False) -> Database:
        """The folder's index (`readonly`: only read, also on read-only media)."""
        return Database(self.path / DB_NAME, readonly=readonly)

    def folder(self, name: str, *, create: bool = True) -> int:
        """A folder of the data folder (StorageError when it is a link or a file)."""
        fd = open_folder(self.fd, name, self.path / name, create=create)
        self._fds.append(fd)
        return fd

    @contextlib.contextmanager
    def locked(
        self, who: str, on_wait: Callable[[str], None] | None = None, *, reading: bool = False
    ) -> Iterator[None]:
        """Hold the folder's lock; when another run holds it, say so and wait.

        A reader (`reading`) of a folder on a read-only file system takes no lock: no run
        can store images there meanwhile."""
        try:
            lock = FolderLock(self.fd, LOCK_NAME)
        except OSError as exc:
            if reading and exc.errno == errno.EROFS:
                yield
                return
            raise explain(self.path / LOCK_NAME, exc) from None
        try:
            if not lock.try_lock():
                holder = lock.holder() or "another run"
                if on_wait is not None:
                    on_wait(f"waiting for {holder}, which is storing images in {self.path}")
                lock.wait()
            lock.describe(f"{who} (pid {os.getpid()} on {socket.gethostname()})")
            yield
        finally:
            lock.close()

    def sweep_tmp(self, tmp: int) -> list[str]:
        """Remove temporary folders of runs that are gone; the names removed.

        Only folders imgflow made are considered (they hold its marker file), and only
        those whose marker nobody holds locked: a live run's folder, in this PID namespace
        or another, is never touched; a link is never followed.
        """
        removed = []
        for name in os.listdir(tmp):
            try:
                sub = subfolder(tmp, name, create=False)
            except OSError:
                continue  # a file or a link: not ours
            try:
                marker = FolderLock(sub, TMP_MARKER) if _has(sub, TMP_MARKER) else None
            except OSError:
                marker = None
            finally:
                os.close(sub)
            if marker is None:
                continue
            try:
                stale = marker.try_lock()
            finally:
                marker.close()
            if stale:
                remove_tree(tmp, name)
                removed.append(name)
        return removed

    def run_tmp(self, tmp: int, run_id: str) -> tuple[int, FolderLock]:
        """The run's own temporary folder and its held marker lock."""
        try:
            os.mkdir(run_id, 0o700, dir_fd=tmp)
            fd = subfolder(tmp, run_id, create=False)
        except OSError as exc:
            raise explain(self.path / "tmp" / run_id, exc) from None
        marker = FolderLock(fd, TMP_MARKER)
        marker.try_lock()
        self._fds.append(fd)
        return fd, marker

    def close(self) -> None:
        """Close every descriptor opened here."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def refuse_linked(path: Path, *inside: str) -> None:
    """StorageError when one of the data folder's own names (and each of the folders
    `inside`, one below the other, such as "runs", run id) is a link; a missing data
    folder is left to the caller."""
    if not path.is_dir():
        return
    folder = DataFolder(path, create=False)
    try:
        fd, label = folder.fd, path
        for name in inside:
            label = label / name
            if not _has(fd, name):
                return
            fd = open_folder(fd, name, label, create=False)
            folder._fds.append(fd)
    finally:
        folder.close()


def _has(parent: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True
