"""The port the engine stores images through, and what an index knows of one image.

The engine fetches and stores; indexing and notifying are the backends' own steps
(imgflow/local/ and imgflow/aws/runtime/), done with a batch's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the store knows of one stored image."""

    key: str
    bytes: int
    sha256: str
    content_type: str | None


class ObjectStore(Protocol):
    """Where image bytes go. `put` must be atomic: the key appears only when complete.

    `inline` says a put is cheap enough to run on the event loop (a page-cache write);
    otherwise the engine runs it in a worker thread (fsync, network).
    """

    inline: bool

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Store `data` under `key`, replacing what was there."""
        ...
