"""Filesystem object store: `<data-dir>/images/<key>`, written atomically."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


class FileStore:
    """Stores images under `root`; a file appears at its final name only when complete.

    Each file is written to a private temporary folder of the run, flushed (and fsynced
    when `fsync` is true), then renamed into place, so a reader or a crash never sees a
    partial image at a final name.
    """

    def __init__(self, root: Path, tmp_dir: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.fsync = fsync
        # Without fsync a small write to the page cache costs less than a thread hop.
        self.inline = not fsync
        self._counter = 0
        self._lock = threading.Lock()
        self._made: set[Path] = set()

    def path_of(self, key: str) -> Path:
        """The file a key is stored in; a key can never point outside the store."""
        path = self.root.joinpath(*key.split("/"))
        if ".." in key.split("/") or not path.is_relative_to(self.root):
            raise OSError(f"key {key!r} points outside the store")
        return path

    def open(self, key: str) -> FileWriter:
        """A writer into a new part file of the run, renamed to the key's file on commit."""
        target = self.path_of(key)
        with self._lock:
            self._counter += 1
            tmp = self.tmp_dir / f"{self._counter}.part"
        self._ensure_dir(target.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return FileWriter(fd, tmp, target, fsync=self.fsync)

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Write `data` to the key's file atomically."""
        writer = self.open(key)
        try:
            writer.write(data)
            writer.commit(content_type)
        finally:
            writer.abort()

    def _ensure_dir(self, folder: Path) -> None:
        if folder in self._made:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OSError(f"{folder} is a file, so it cannot hold another image") from None
        self._made.add(folder)

    def size_of(self, key: str) -> int | None:
        """The stored file's size, or None when it is missing."""
        try:
            return self.path_of(key).stat().st_size
        except OSError:
            return None

    def open_tmp(self) -> None:
        """Create the run's temporary folder."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def close_tmp(self) -> None:
        """Remove the run's temporary folder and anything left in it."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class FileWriter:
    """One image being written to a part file; `commit` renames it into place."""

    def __init__(self, fd: int, tmp: Path, target: Path, *, fsync: bool) -> None:
        self._fd: int | None = fd
        self._tmp: Path | None = tmp
        self._target = target
        self._fsync = fsync

    def write(self, chunk: bytes) -> None:
        """Append `chunk` to the part file."""
        if self._fd is None:
            raise OSError("write after commit or abort")
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def commit(self, content_type: str | None) -> None:
        """Flush (fsync when the store says so) and rename the part file to the key's file."""
        fd, tmp = self._fd, self._tmp
        if fd is None or tmp is None:
            raise OSError("commit after commit or abort")
        self._fd = None
        try:
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, self._target)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self._tmp = None

    def abort(self) -> None:
        """Close and remove the part file; nothing appears at the key (no-op after commit)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
