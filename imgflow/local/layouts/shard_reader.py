"""Reading the samples of every shard in `shards` (`imgflow check`, the report)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import threading
from collections.abc import Iterator
from typing import BinaryIO

from imgflow.local.folder import DataFolder
from imgflow.local.layouts.base import Stamp
from imgflow.local.layouts.shard_folder import READ, lstat, shard_files
from imgflow.local.layouts.shard_format import SHARDS_DIR, ShardContents, format_of
from imgflow.local.safefs import StorageError


class ShardReader:
    """The samples of every shard in `shards`, for `imgflow check` and the report.

    A key's sample is read from the newest shard holding it (an older one was refreshed);
    a shard that cannot be read holds nothing (its rows are missing); names in `shards`
    that are not shards or their tables are listed as foreign (`shards/<name>`)."""

    def __init__(self, folder: DataFolder) -> None:
        self.folder = folder
        self.shards: int | None
        try:
            self.shards = folder.folder(SHARDS_DIR, create=False)
        except StorageError:
            if (folder.path / SHARDS_DIR).is_symlink():
                raise
            self.shards = None
        self._samples: dict[str, tuple[str, str, int, str]] | None = None
        self._contents: dict[str, ShardContents] = {}
        self._streams: list[BinaryIO] = []
        self._foreign: list[str] = []
        # The report makes thumbnails in a few threads: shards are read one at a time.
        self._lock = threading.RLock()

    def _load(self) -> dict[str, tuple[str, str, int, str]]:
        with self._lock:
            return self._load_all()

    def _load_all(self) -> dict[str, tuple[str, str, int, str]]:
        if self._samples is not None:
            return self._samples
        samples: dict[str, tuple[str, str, int, str]] = {}
        if self.shards is not None:
            tables: set[str] = set()
            for _, name in shard_files(self.shards):
                stem = name.split(".", 1)[0]
                tables.update({f"{stem}_stats.json", name})
                if name.endswith(".tar"):
                    tables.update({f"{stem}.jsonl", f"{stem}.parquet"})
                contents = self._open(name)
                if contents is None:
                    continue
                for key, (member, size, digest) in contents.samples.items():
                    samples[key] = (name, member, size, digest)
            self._foreign = [
                f"{SHARDS_DIR}/{name}"
                for name in sorted(os.listdir(self.shards))
                if name not in tables
            ]
        self._samples = samples
        return samples

    def _open(self, name: str) -> ShardContents | None:
        if name not in self._contents:
            assert self.shards is not None
            try:
                stream = open(os.open(name, READ, dir_fd=self.shards), "rb")  # noqa: SIM115
                self._streams.append(stream)
                self._contents[name] = format_of(name).locate(stream)
            except Exception:  # a truncated or damaged shard: nothing readable in it
                return None
        return self._contents[name]

    def stat(self, key: str) -> Stamp | None:
        found = self._load().get(key)
        if found is None or self.shards is None:
            return None
        info = lstat(self.shards, found[0])
        return None if info is None else Stamp(found[2], info.st_mtime_ns)

    def open_stored(self, key: str) -> BinaryIO:
        found = self._load().get(key)
        if found is None:
            raise OSError(errno.ENOENT, f"no sample {key} in the shards")
        with self._lock:
            contents = self._open(found[0])
            if contents is None:
                raise OSError(errno.EIO, f"shard {found[0]} cannot be read")
            return io.BytesIO(contents.read(found[1]))

    def iter_stored(self) -> Iterator[tuple[str, bool]]:
        for key in list(self._load()):
            yield key, True
        for name in self._foreign:
            yield name, False

    def remove(self, key: str) -> None:
        """Nothing here: `check --repair` forgets the sample's row, and its shard is then
        rewritten without it (imgflow/local/layouts/shard_rewrite.py)."""

    def close(self) -> None:
        self._contents.clear()
        for stream in self._streams:
            with contextlib.suppress(OSError):
                stream.close()
        self._streams.clear()
