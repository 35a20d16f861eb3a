"""The files layout: one file per image, `<data-dir>/images/<key>`, never through a link.

Runs store through imgflow/local/store.py (part file, fsync, rename by folder descriptor);
`imgflow check` and the report read through FilesReader, which opens every name one
component at a time without following links (imgflow/local/safefs.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from imgflow.local.folder import DataFolder
from imgflow.local.layouts.base import Stamp
from imgflow.local.safefs import KeyTree
from imgflow.local.store import FileStore

IMAGES_DIR = "images"


class FilesLayout:
    """One file per image under the data folder's `images` folder."""

    def open_run(self, folder: DataFolder, tmp: int, *, fsync: bool) -> FileStore:
        """The run's FileStore, its part files in `tmp`."""
        return FileStore(folder.folder(IMAGES_DIR), tmp, fsync=fsync)

    def open_reader(self, folder: DataFolder) -> FilesReader:
        """A reader of the files under `images`."""
        return FilesReader(KeyTree(folder.folder(IMAGES_DIR)))


class FilesReader:
    """The files under `images`, read and removed without following a link."""

    def __init__(self, tree: KeyTree) -> None:
        self.tree = tree

    def stat(self, key: str) -> Stamp | None:
        """The key's file size and time; None when it is missing or not a regular file."""
        found = self.tree.lstat(key)
        return None if found is None else Stamp(found.st_size, found.st_mtime_ns)

    def open_stored(self, key: str) -> BinaryIO:
        """The key's file, opened for reading (raises OSError; links refused)."""
        return open(self.tree.open_read(key), "rb")

    def iter_stored(self) -> Iterator[tuple[str, bool]]:
        """(key, is a regular file) of everything but folders under `images`."""
        for top, dirs, names, fd in os.fwalk(".", dir_fd=self.tree.root):
            prefix = "" if top == "." else top[2:] + "/"
            for name in [*dirs, *names]:
                try:
                    mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
                except OSError:
                    continue
                if not stat.S_ISDIR(mode):
                    yield prefix + name, stat.S_ISREG(mode)

    def remove(self, key: str) -> None:
        """Remove the key's file (or link), if any."""
        self.tree.remove(key)

    def close(self) -> None:
        """Close the cached folders (the data folder closes `images` itself)."""
        self.tree.close()
