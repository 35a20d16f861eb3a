"""A small source of full URLs for tests: what a URL table gives the runner."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from imgflow.engine.keys import key_for
from imgflow.engine.plan import Item


class Urls:
    """Items of full URLs (given as URLs, or as Items with their metadata), in order."""

    def __init__(self, entries: Iterable[str | Item]) -> None:
        self._items = [Item(url=e, key=key_for(e)) if isinstance(e, str) else e for e in entries]

    @property
    def count(self) -> int:
        return len(self._items)

    @property
    def concurrency(self) -> int | None:
        return None

    @property
    def base_url(self) -> str | None:
        return None

    def items(self) -> Iterator[Item]:
        return iter(self._items)

    def describe(self) -> dict[str, Any]:
        return {"kind": "urls", "count": len(self._items)}

    def cleanup(self) -> None:
        pass
