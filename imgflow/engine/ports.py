"""The port the engine stores images through, and what an index knows of one image.

The engine fetches and stores; indexing and notifying are the backends' own steps
(imgflow/local/ and imgflow/aws/runtime/), done with a batch's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said identifies the version it sent: ETag and Last-Modified, verbatim."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


NO_VALIDATORS = Validators()


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the store knows of one stored image (and its validators, for a revalidation)."""

    key: str
    bytes: int
    sha256: str
    content_type: str | None
    validators: Validators = NO_VALIDATORS


class ObjectWriter(Protocol):
    """One object being written: bytes are appended, then published or discarded.

    Nothing appears at the key before `commit`, and nothing ever after `abort`. Calls come
    one at a time (never concurrently), possibly from different worker threads.

    A writer may also offer `commit_later(content_type) -> Awaitable[None] | None`, called on
    the event loop of an `inline` store instead of `commit`: the commit is handed over (to
    be made durable with others, imgflow/local/durability.py) and the awaitable settles
    once it is published; None means "call `commit` now".
    """

    def write(self, chunk: bytes | memoryview) -> None:
        """Append `chunk` to the object (a view's bytes are copied, never kept)."""
        ...

    def commit(self, content_type: str | None) -> None:
        """Publish the object at its key atomically, replacing what was there."""
        ...

    def abort(self) -> None:
        """Discard what was written; nothing appears at the key (a no-op after commit)."""
        ...


class ObjectStore(Protocol):
    """Where image bytes go. `put` and `open` are atomic: a key appears only when complete.

    `inline` says a write is cheap enough to run on the event loop (a page-cache write);
    otherwise the engine runs writes, commits and aborts in a worker thread (fsync, network).
    """

    inline: bool

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Store `data` under `key`, replacing what was there."""
        ...

    def open(self, key: str) -> ObjectWriter:
        """A writer whose `commit` publishes the streamed bytes under `key`."""
        ...
