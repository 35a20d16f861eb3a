"""Plan: the Item, the unit from input to index, and batches of items."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from imgflow.engine.job import url_for
from imgflow.engine.keys import key_for

NO_META: Mapping[str, Any] = MappingProxyType({})


def meta_view(meta: dict[str, Any]) -> Mapping[str, Any]:
    """An item's metadata as a read-only view of `meta` (NO_META when it is empty)."""
    return MappingProxyType(meta) if meta else NO_META


@dataclass(frozen=True, slots=True)
class Item:
    """One image to fetch: its URL, the key it is stored under and its source's metadata.

    `path` is the seed job's resource path (what `resourcePaths` held); a source of full
    URLs leaves it empty, and `name` is then the URL. `meta` holds what the source knows of
    the item besides its URL (a table's caption and other columns): JSON values only.
    `problem`, when set, is why the item cannot be fetched (a table's bad row, with its
    line number): it is recorded as failed when planned, never fetched.
    """

    url: str
    key: str
    meta: Mapping[str, Any] = field(default_factory=lambda: NO_META)
    path: str = ""
    problem: str = ""

    @property
    def name(self) -> str:
        """How the item's source named it: its resource path, else its URL."""
        return self.path or self.url


def item_for(base_url: str, path: str, key_base: str | None = None) -> Item:
    """The item of a normalised `path` under a validated `base_url`.

    `key_base`, when given, is the base URL the stored key is derived from instead (the
    demo keeps its keys when its server has to move to another port).
    """
    url = url_for(base_url, path)
    key = key_for(url if key_base is None else url_for(key_base, path))
    return Item(path=path, url=url, key=key)


def batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive batches of at most `size` items."""
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
