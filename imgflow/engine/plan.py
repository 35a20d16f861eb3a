"""Plan: turn validated paths into items (path, URL, stored key) and split them into batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from imgflow.engine.job import url_for
from imgflow.engine.keys import key_for


@dataclass(frozen=True, slots=True)
class Item:
    """One image to fetch: its input path, its URL and the key it is stored under."""

    path: str
    url: str
    key: str


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
