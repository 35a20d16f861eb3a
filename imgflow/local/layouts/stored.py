"""What a data folder stores, whatever layouts its runs used: files and shards together.

`imgflow check` and the report read through `stored_reader`: a key is looked up in the
shards first (a sample a shard layout stored), then under `images` (the files layout).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from imgflow.local.folder import DataFolder
from imgflow.local.layouts.base import Stamp, StoredReader
from imgflow.local.layouts.files import FilesLayout
from imgflow.local.layouts.shard_reader import ShardReader


class BothReader:
    """The shards' samples, then the files."""

    def __init__(self, shards: ShardReader, files: StoredReader) -> None:
        self.shards = shards
        self.files = files

    def stat(self, key: str) -> Stamp | None:
        found = self.shards.stat(key)
        return found if found is not None else self.files.stat(key)

    def open_stored(self, key: str) -> BinaryIO:
        if self.shards.stat(key) is not None:
            return self.shards.open_stored(key)
        return self.files.open_stored(key)

    def iter_stored(self) -> Iterator[tuple[str, bool]]:
        yield from self.shards.iter_stored()
        yield from self.files.iter_stored()

    def remove(self, key: str) -> None:
        if self.shards.stat(key) is None:
            self.files.remove(key)

    def close(self) -> None:
        self.shards.close()
        self.files.close()


def stored_reader(folder: DataFolder) -> StoredReader:
    """A reader of every image the folder stores, in files or in shards."""
    files = FilesLayout().open_reader(folder)
    try:
        return BothReader(ShardReader(folder), files)
    except BaseException:
        files.close()
        raise
