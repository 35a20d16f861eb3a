"""Staging an image for the next shard: in memory, or in a part file in the run's tmp
folder when large; read back when the sample is appended to a shard."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

# A staged image larger than this goes to a part file in the run's tmp folder.
SPILL_BYTES = 1 << 20
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class Staging:
    """An image being written: in memory, spilled to a part file when large."""

    def __init__(
        self,
        key: str,
        tmp: int,
        names: Iterator[int],
        stage: Callable[[str, bytes | None, str | None, int], None],
    ) -> None:
        self.key = key
        self.tmp = tmp
        self.names = names
        self.stage = stage
        self.chunks: list[bytes] = []
        self.size = 0
        self.fd: int | None = None
        self.part: str | None = None
        self.done = False

    def write(self, chunk: bytes | memoryview) -> None:
        if self.done:
            raise OSError("write after commit or abort")
        self.size += len(chunk)
        if self.fd is None:
            self.chunks.append(bytes(chunk))
            if self.size <= SPILL_BYTES:
                return
            self.part = f"{next(self.names)}.part"
            self.fd = os.open(self.part, CREATE, 0o644, dir_fd=self.tmp)
            chunks, self.chunks = self.chunks, []
            for piece in chunks:
                write_all(self.fd, piece)
            return
        write_all(self.fd, chunk)

    def commit(self, content_type: str | None) -> None:
        if self.done:
            raise OSError("commit after commit or abort")
        self.done = True
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        data = None if self.part is not None else b"".join(self.chunks)
        self.chunks = []
        self.stage(self.key, data, self.part, self.size)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self.chunks = []
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.part is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.part, dir_fd=self.tmp)


def write_all(fd: int, chunk: bytes | memoryview) -> None:
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


@dataclass
class Staged:
    data: bytes | None
    part: str | None
    size: int


def counter() -> Iterator[int]:
    return itertools.count(1)


@contextlib.contextmanager
def opened(tmp: int, staged: Staged) -> Iterator[BinaryIO]:
    if staged.part is None:
        yield io.BytesIO(staged.data or b"")
        return
    with open(os.open(staged.part, READ, dir_fd=tmp), "rb") as stream:
        yield stream
