"""The Source interface every kind of job input implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from imgflow.engine.plan import Item


class Source(Protocol):
    """A validated, re-readable supply of items."""

    @property
    def count(self) -> int | None:
        """How many items `items()` yields (duplicates included); None when unknown
        before reading them all (a large table, a stream: planned as the run goes)."""

    @property
    def concurrency(self) -> int | None:
        """The concurrency the input asks for (a job's ``lambdaConcur``), if any."""

    @property
    def base_url(self) -> str | None:
        """The seed contract's base URL, for a source of paths under one; else None."""

    def items(self) -> Iterator[Item]:
        """The items in input order, read again (streamed) at each call."""

    def describe(self) -> dict[str, Any]:
        """What the source is, as JSON, for the run's record (``{"kind": ...}``)."""

    def cleanup(self) -> None:
        """Remove what the source made for itself (a spooled copy of standard input)."""
