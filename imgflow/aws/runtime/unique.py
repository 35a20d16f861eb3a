"""Drop repeated paths from a stream, keeping first occurrences in order, in flat memory.

A small job is deduplicated in memory. A large one (`partitions` > 1) goes through disk
(Lambda's /tmp): each path is appended, with its position, to one of `partitions` files
chosen by its hash (so every copy of a path lands in the same file); each file is then
deduplicated on its own (memory: one file's paths), and the survivors of all files are
merged back in their original order (heapq.merge, one line per file in memory). Memory is
then the size of one partition, whatever the number of paths; the caller picks
`partitions` from the job's size.

Paths are normalised (engine/job.normalize_path): no tab, newline or control character,
so a line ``<position>\\t<path>`` holds one path.
"""

from __future__ import annotations

import heapq
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

BUFFER = 1 << 13  # per partition file: many are open at once


class UniquePaths:
    """The first occurrence of each path of `paths`, in order; the counts once iterated."""

    def __init__(
        self,
        paths: Iterable[str],
        partitions: int = 1,
        key: Callable[[str], str] | None = None,
    ) -> None:
        self._paths = paths
        self._partitions = max(1, partitions)
        self._key = key  # what makes two lines the same (default: the whole line)
        self.total = 0  # paths read
        self.unique = 0  # paths yielded

    def __iter__(self) -> Iterator[str]:
        source = self._in_memory() if self._partitions == 1 else self._on_disk()
        for path in source:
            self.unique += 1
            yield path

    def _counted(self) -> Iterator[str]:
        for path in self._paths:
            self.total += 1
            yield path

    def _in_memory(self) -> Iterator[str]:
        seen: set[str] = set()
        key = self._key or str
        for path in self._counted():
            if key(path) not in seen:
                seen.add(key(path))
                yield path

    def _on_disk(self) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="imgflow-unique-") as folder:
            spread = self._spread(Path(folder))
            survivors = [_first_occurrences(path, self._key or str) for path in spread]
            with ExitStack() as stack:
                files = [stack.enter_context(_open(path, "r")) for path in survivors]
                for _, path in heapq.merge(*(_rows(f) for f in files)):
                    yield path

    def _spread(self, folder: Path) -> list[Path]:
        """Write each path with its position to its hash's partition file."""
        names = [folder / f"in-{n}" for n in range(self._partitions)]
        with ExitStack() as stack:
            files = [stack.enter_context(_open(name, "w")) for name in names]
            for position, path in enumerate(self._counted()):
                same = path if self._key is None else self._key(path)
                files[zlib.crc32(same.encode()) % self._partitions].write(f"{position}\t{path}\n")
        return names


def _open(name: Path, mode: str) -> IO[str]:
    return open(name, mode, encoding="utf-8", buffering=BUFFER)


def _rows(lines: IO[str]) -> Iterator[tuple[int, str]]:
    for line in lines:
        position, path = line.rstrip("\n").split("\t", 1)
        yield int(position), path


def _first_occurrences(name: Path, key: Callable[[str], str]) -> Path:
    """A file of the lines of `name` whose path was not seen before in it (then `name` goes)."""
    out = name.with_name(name.name.replace("in-", "out-"))
    seen: set[str] = set()
    with _open(name, "r") as lines, _open(out, "w") as kept:
        for line in lines:
            path = key(line.rstrip("\n").split("\t", 1)[1])
            if path not in seen:
                seen.add(path)
                kept.write(line)
    os.remove(name)
    return out
