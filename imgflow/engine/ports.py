"""The small ports the engine stores, indexes and notifies through.

Local adapters live in imgflow/local/, AWS adapters in imgflow/aws/ and lambdas/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from imgflow.engine.records import ResultRecord


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the store knows of one stored image."""

    key: str
    bytes: int
    sha256: str
    content_type: str | None


class ObjectStore(Protocol):
    """Where image bytes go. `put` must be atomic: the key appears only when complete."""

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        """Store `data` under `key`, replacing what was there."""
        ...


class Index(Protocol):
    """The url -> stored key index."""

    def lookup(self, urls: Sequence[str]) -> dict[str, StoredObject]:
        """The stored objects known for any of `urls` (absent ones are left out)."""
        ...

    def record(self, run_id: str, records: Sequence[ResultRecord]) -> None:
        """Index the stored records of a finished batch (others are ignored)."""
        ...


class Notifier(Protocol):
    """Where the failure messages of a run go."""

    def notify(self, run_id: str, messages: Sequence[str], total_failed: int) -> None:
        """Report a run's failures."""
        ...
