"""File operations that never leave the data folder, whatever links they meet.

Every name below the data folder is opened one component at a time, relative to its
parent's file descriptor, with ``O_NOFOLLOW``: a symbolic link anywhere (``tmp``,
``images``, a key's folder or the key's file itself) is refused instead of followed, and
a rename replaces the link itself, never its target. Only the data folder's own path (the
user's choice) is resolved by the operating system.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import threading
from pathlib import Path

from imgflow.errors import BackendError
from imgflow.local.descriptors import soft_limit

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHED_FOLDERS = 4096  # at most; and no more than an eighth of the descriptor limit


class StorageError(BackendError):
    """The data folder cannot be used as it is; the message says why and what to do."""


def explain(path: Path, exc: OSError) -> StorageError:
    """One line naming `path` and what is wrong with it."""
    if exc.errno == errno.ELOOP:
        return StorageError(
            f"{path} is a symbolic link; imgflow never follows links in its data folder:"
            " remove it (or use another --data-dir)"
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return StorageError(f"{path} is a file, not a folder: move it aside or use another one")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StorageError(f"{path}: permission denied (check its owner and mode)")
    if exc.errno == errno.EROFS:
        return StorageError(f"{path} is on a read-only file system")
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{path}: no space left on the device; free some and run again")
    return StorageError(f"{path}: {exc.strerror or exc}")


def open_data_dir(path: Path) -> int:
    """The data folder's descriptor, creating the folder (and its parents) if needed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise explain(path, exc) from None


def subfolder(parent: int, name: str, *, create: bool = True) -> int:
    """The descriptor of folder `name` in `parent`, never through a link (raises OSError)."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(parent, name)):
            raise OSError(errno.ELOOP, "is a symbolic link; imgflow does not follow it") from None
        raise


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_folder(parent: int, name: str, label: Path, *, create: bool = True) -> int:
    """`subfolder` for a folder of the data folder itself: problems are StorageErrors."""
    try:
        return subfolder(parent, name, create=create)
    except OSError as exc:
        raise explain(label, exc) from None


def refuse_links(parent: int, names: tuple[str, ...], folder: Path) -> None:
    """StorageError if any of `names` in `parent` is a symbolic link."""
    for name in names:
        if _is_link(parent, name):
            raise explain(folder / name, OSError(errno.ELOOP, "link"))


def remove_tree(parent: int, name: str) -> None:
    """Remove folder `name` of `parent` and its contents, following no link."""
    shutil.rmtree(name, dir_fd=parent, ignore_errors=True)


class FolderLock:
    """An exclusive ``flock`` on a file; the kernel drops it when its holder exits.

    It is not a pid: a run in another PID namespace (a container on the same folder), a
    reused pid or a dead process can never make a live run's lock look free.
    """

    def __init__(self, parent: int, name: str) -> None:
        self.fd = os.open(
            name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent
        )

    def try_lock(self) -> bool:
        """Take the lock if it is free; True when taken."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def wait(self) -> None:
        """Take the lock, waiting for its holder to release it."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def holder(self) -> str:
        """What the holder wrote about itself."""
        try:
            return os.pread(self.fd, 200, 0).decode(errors="replace").strip()
        except OSError:
            return ""

    def describe(self, text: str) -> None:
        """Write who holds the lock (read by those waiting for it)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)

    def close(self) -> None:
        """Release the lock."""
        os.close(self.fd)


class KeyTree:
    """The folders and files of stored keys under one folder descriptor, links refused.

    Folder descriptors are cached (up to a limit), so storing many images in one folder
    opens it once. Safe to use from several threads.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self._folders: dict[str, int] = {}
        self._lock = threading.Lock()
        self._most = min(_CACHED_FOLDERS, (soft_limit() or 8 * _CACHED_FOLDERS) // 8)

    def parts(self, key: str) -> tuple[str, str]:
        """(folder, leaf) of a key; a key never names `.`, `..` or an empty name."""
        names = key.split("/")
        if any(name in ("", ".", "..") for name in names):
            raise OSError(errno.EINVAL, f"key {key!r} is not a plain relative name")
        return "/".join(names[:-1]), names[-1]

    def folder(self, folder: str, *, create: bool) -> tuple[int, bool]:
        """(descriptor, True when the caller must close it) of a key's folder."""
        if not folder:
            return self.root, False
        with self._lock:
            cached = self._folders.get(folder)
        if cached is not None:
            return cached, False
        fd = self.root
        try:
            for name in folder.split("/"):
                try:
                    child = subfolder(fd, name, create=create)
                except OSError as exc:
                    if exc.errno == errno.ENOTDIR:
                        raise OSError(
                            errno.ENOTDIR, f"{name} is a file, so it cannot hold another image"
                        ) from None
                    raise
                if fd != self.root:
                    os.close(fd)
                fd = child
        except BaseException:
            if fd != self.root:
                os.close(fd)
            raise
        with self._lock:
            if folder in self._folders:
                os.close(fd)
                return self._folders[folder], False
            if len(self._folders) < self._most:
                self._folders[folder] = fd
                return fd, False
        return fd, True

    def forget_folder(self, folder: str) -> None:
        """Drop a cached folder (it was removed or replaced meanwhile)."""
        with self._lock:
            fd = self._folders.pop(folder, None)
        if fd is not None:
            os.close(fd)

    def place(self, src_dir: int, src: str, key: str) -> None:
        """Rename `src` of `src_dir` to `key`, replacing what is there (never through a link)."""
        folder, leaf = self.parts(key)
        for attempt in (1, 2):
            fd, owned = self.folder(folder, create=True)
            try:
                os.rename(src, leaf, src_dir_fd=src_dir, dst_dir_fd=fd)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self.forget_folder(folder)  # the cached folder was removed: open it again
            finally:
                if owned:
                    os.close(fd)

    def lstat(self, key: str) -> os.stat_result | None:
        """The key's file status when it is a regular file; None when missing or not a file."""
        try:
            folder, leaf = self.parts(key)
            fd, owned = self.folder(folder, create=False)
        except OSError:
            return None
        try:
            found = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None
        finally:
            if owned:
                os.close(fd)
        return found if stat.S_ISREG(found.st_mode) else None

    def open_read(self, key: str) -> int:
        """A descriptor to read the key's file (raises OSError; links refused)."""
        folder, leaf = self.parts(key)
        fd, owned = self.folder(folder, create=False)
        try:
            return os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            if owned:
                os.close(fd)

    def remove(self, key: str) -> None:
        """Remove the key's file (or link), if any."""
        try:
            folder, leaf = self.parts(key)
            fd, owned = self.folder(folder, create=False)
        except OSError:
            return
        try:
            os.unlink(leaf, dir_fd=fd)
        except FileNotFoundError:
            pass
        finally:
            if owned:
                os.close(fd)

    def close(self) -> None:
        """Close the cached folders."""
        with self._lock:
            folders, self._folders = self._folders, {}
        for fd in folders.values():
            os.close(fd)
