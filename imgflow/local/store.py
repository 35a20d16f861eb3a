"""The files layout's RunStore: `<data-dir>/images/<key>`, written atomically, never through a link.

Each image is written to the run's private temporary folder (`<data-dir>/tmp/<run-id>/`),
flushed (and made durable when `fsync` is true, in groups: imgflow/local/durability.py),
then renamed into place relative to its folder's descriptor (imgflow/local/safefs.py), so
a reader or a crash never sees a partial image at a final name and no link can send a write
outside the data folder.

Every rename is remembered until the runner has saved the image's record (`settle`); after an
interrupt the store is sealed (no rename starts any more) and the images renamed whose
records were lost with the cancelled tasks are removed (`discard_unsettled`), so no file is
left without its index row (imgflow/local/layouts/base.py).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
from collections.abc import Awaitable, Collection, Iterable

from imgflow.local.descriptors import waiting_for_descriptors
from imgflow.local.digest import sha256_of
from imgflow.local.durability import GroupCommit
from imgflow.local.safefs import KeyTree

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileStore:
    """Stores images under the `images` folder descriptor, temporaries under `tmp`'s."""

    def __init__(self, images: int, tmp: int, *, fsync: bool = True) -> None:
        self.tree = KeyTree(images)
        self.tmp = tmp
        self.fsync = fsync
        # With fsync, finished part files wait for their group's sync, then are renamed.
        self._group = GroupCommit(tmp, self._place, self._remove) if fsync else None
        # A small write to the page cache costs less than a thread hop; the sync is the
        # group's (`FileWriter.commit_later`).
        self.inline = True
        self._names = itertools.count(1)  # next() is atomic under the GIL: no lock
        # Guards `_sealed`, `_renaming` and `_unsettled`; never held during a system call,
        # so the commits of many threads rename side by side.
        self._lock = threading.Condition(threading.Lock())
        self._sealed = False
        self._renaming = 0  # renames started before a seal and not yet finished
        self._unsettled: dict[str, int] = {}  # key -> modification time of its file

    def open(self, key: str) -> FileWriter:
        """A writer into a new part file of the run, renamed to the key's file on commit."""
        self.tree.parts(key)  # refuse a malformed key before anything is written
        fd, name = self._temporary()
        return FileWriter(self, key, fd, name)

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Write `data` to the key's file atomically."""
        writer = self.open(key)
        try:
            writer.write(data)
            writer.commit(content_type)
        finally:
            writer.abort()

    def _temporary(self) -> tuple[int, str]:
        name = f"{next(self._names)}.part"
        # Out of descriptors for a moment: wait for another request to close its own.
        opened = waiting_for_descriptors(lambda: os.open(name, _CREATE, 0o644, dir_fd=self.tmp))
        return opened, name

    def _abort(self, fd: int, name: str) -> None:
        os.close(fd)
        self._remove(name)

    def _close(self, fd: int, name: str, fsync: bool) -> int:
        """Close the finished part file (fsynced first when asked); its mtime. On failure
        it is removed."""
        try:
            if fsync:
                os.fsync(fd)
            mtime_ns = os.fstat(fd).st_mtime_ns
        except BaseException:
            self._abort(fd, name)
            raise
        os.close(fd)
        return mtime_ns

    def _commit(self, key: str, fd: int, name: str) -> None:
        """fsync (with `fsync`), then rename the temporary into place (unless the store is
        sealed)."""
        self._place(key, name, self._close(fd, name, self.fsync), False)

    def _place(self, key: str, name: str, mtime_ns: int, fsync: bool) -> None:
        """Rename the closed temporary `name` into place (after its own fsync when asked),
        unless the store is sealed; on failure it is removed."""
        try:
            if fsync:
                fd = waiting_for_descriptors(lambda: os.open(name, _REOPEN, dir_fd=self.tmp))
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            with self._lock:
                if self._sealed:
                    raise OSError(errno.EINTR, "the run was interrupted")
                self._renaming += 1
            renamed = False
            try:
                self.tree.place(self.tmp, name, key)
                renamed = True
            finally:
                with self._lock:
                    if renamed:
                        self._unsettled[key] = mtime_ns
                    self._renaming -= 1
                    self._lock.notify_all()
        except BaseException:
            self._remove(name)
            raise

    def _remove(self, name: str) -> None:
        """Remove the closed temporary `name` (never published)."""
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self.tmp)

    def written(self, keys: Iterable[str]) -> dict[str, int]:
        """The modification times of the files this run stored under `keys`, until settled."""
        with self._lock:
            return {key: self._unsettled[key] for key in keys if key in self._unsettled}

    def settle(self, keys: Iterable[str]) -> None:
        """The records of these keys' files are saved: they are no longer at risk."""
        with self._lock:
            for key in keys:
                self._unsettled.pop(key, None)

    def seal(self) -> None:
        """Refuse every rename from now on (an interrupt); renames in progress finish
        (and are remembered) before this returns."""
        with self._lock:
            self._sealed = True
            self._lock.wait_for(lambda: not self._renaming)

    def discard_unsettled(self, keep: Collection[str] = ()) -> list[str]:
        """Remove the files renamed whose records never reached the runner; their keys.

        Files at `keep` keys replaced an earlier version (a revalidation): they stay."""
        with self._lock:
            keys, self._unsettled = [k for k in self._unsettled if k not in keep], {}
        for key in keys:
            self.tree.remove(key)
        return keys

    def intact(self, key: str, size: int, mtime_ns: int | None, sha256: str) -> int | None:
        """The key's file's mtime when it is a regular file of `size` bytes whose mtime is
        `mtime_ns` (or, when it is not, whose bytes have `sha256`); else None.

        An unchanged file costs one lstat; only a file of the right size whose time
        changed (a copied folder) is read."""
        found = self.tree.lstat(key)
        if found is None or found.st_size != size:
            return None
        if mtime_ns is None or found.st_mtime_ns == mtime_ns:
            return found.st_mtime_ns
        try:
            with open(self.tree.open_read(key), "rb") as stream:
                same = sha256_of(stream) == sha256
        except OSError:
            return None
        return found.st_mtime_ns if same else None

    def close(self) -> None:
        """Remove the part files still waiting for a group's sync (their tasks are gone),
        then close the folders' descriptors (the folders' owner closes `images` and
        `tmp`)."""
        if self._group is not None:
            self._group.close()
        self.tree.close()


class FileWriter:
    """One image being written to a part file; `commit` renames it into place.

    Everything goes through the store's link-proof primitives: the part file is created
    with O_EXCL | O_NOFOLLOW in the run's temporary folder, and `commit` renames it by
    folder descriptor (refused once the store is sealed by an interrupt).
    """

    def __init__(self, store: FileStore, key: str, fd: int, name: str) -> None:
        self._store = store
        self._key = key
        self._fd: int | None = fd
        self._name = name

    def write(self, chunk: bytes | memoryview) -> None:
        """Append `chunk` to the part file."""
        if self._fd is None:
            raise OSError("write after commit or abort")
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]

    def commit(self, content_type: str | None) -> None:
        """Flush (fsync when the store says so) and rename the part file to the key's file."""
        fd, self._fd = self._fd, None
        if fd is None:
            raise OSError("commit after commit or abort")
        self._store._commit(self._key, fd, self._name)

    def commit_later(self, content_type: str | None) -> Awaitable[None] | None:
        """On the loop, with fsync on: the part file closed and handed to the store's group
        commit, to be awaited; None when `commit` is cheap enough to call here (fsync off)."""
        group = self._store._group
        if group is None:
            return None
        fd, self._fd = self._fd, None
        if fd is None:
            raise OSError("commit after commit or abort")
        # Closed now: a file waiting for its group holds no descriptor (the group's sync
        # needs none; a file that needs its own fsync is opened again for it).
        mtime_ns = self._store._close(fd, self._name, False)
        return group.commit(self._name, self._key, mtime_ns)

    def abort(self) -> None:
        """Close and remove the part file; nothing appears at the key (no-op after commit)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            self._store._abort(fd, self._name)
