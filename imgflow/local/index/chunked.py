"""Queries of the rows whose column is in a list of values, 500 values per query."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

# Values per IN (...) query: well within SQLite's limit of bound parameters.
PER_QUERY = 500


def rows_in(
    conn: sqlite3.Connection, query: str, values: Sequence[Any], *first: Any
) -> Iterator[Any]:
    """The rows of `query` for every value, asked `PER_QUERY` at a time: its `{marks}` is
    the IN list's placeholders (bound after `first`, the query's earlier parameters)."""
    for start in range(0, len(values), PER_QUERY):
        part = values[start : start + PER_QUERY]
        yield from conn.execute(query.format(marks=",".join("?" * len(part))), (*first, *part))
