"""Items kept on disk in order: a host's items past its share of the lookahead.

`run_hosts` (engine/hosts.py) holds at most a host's share of the items read ahead in
memory; the host's later items wait here, one JSON line each in an unnamed temporary file
(gone when closed, or when the process dies), and come back in the order they were read,
a chunk at a time, as the host's queue runs low. So one slow host's backlog costs disk,
not memory, and never stops the reader from reaching other hosts' items.
"""

from __future__ import annotations

import json
import tempfile

from imgflow.engine.plan import Item, meta_view


class Spill:
    """One host's items waiting on disk (first in, first out)."""

    def __init__(self, directory: str | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by close)
        self._read = 0  # where the next item to take starts
        self.count = 0

    def put(self, item: Item) -> None:
        """Keep `item` after the others."""
        line = [item.url, item.key, dict(item.meta), item.path, item.problem]
        self._file.seek(0, 2)
        self._file.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        self.count += 1

    def take(self, most: int) -> list[Item]:
        """Up to `most` of the items, the oldest first."""
        self._file.seek(self._read)
        items: list[Item] = []
        while len(items) < min(most, self.count):
            url, key, meta, path, problem = json.loads(self._file.readline())
            items.append(Item(url, key, meta_view(meta), path, problem))
        self.count -= len(items)
        self._read = self._file.tell()
        if not self.count:  # all taken: start the file again
            self._file.seek(0)
            self._file.truncate()
            self._read = 0
        return items

    def close(self) -> None:
        """Forget what is left (the file is removed)."""
        self._file.close()
