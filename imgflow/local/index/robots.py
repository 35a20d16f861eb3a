"""The ``robots`` table: robots.txt answers kept across runs (imgflow/engine/robots.py).

A run loads the fresh ones when it starts (`robots_cache`) and saves those it read from its
own thread, with its records (`save_robots`): the engine never writes to the index.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from imgflow.engine.robots import MAX_AGE, MemoryCache, Stored
from imgflow.local.index.connection import Connected
from imgflow.local.index.schema import columns


class RobotsTable(Connected):
    """The queries of the ``robots`` table (part of `Database`)."""

    def robots_cache(self, now: float | None = None) -> MemoryCache:
        """The answers read less than MAX_AGE ago, as a cache for one run's engine."""
        since = (time.time() if now is None else now) - MAX_AGE
        if "origin" not in columns(self.conn, "robots"):  # (an older database, read only)
            return MemoryCache()
        rows = self.conn.execute(
            "SELECT origin, status, body, fetched_at FROM robots WHERE fetched_at > ?",
            (since,),
        ).fetchall()
        return MemoryCache(
            {origin: Stored(status, bytes(body), at) for origin, status, body, at in rows}
        )

    def save_robots(self, entries: Mapping[str, Stored]) -> None:
        """Keep these answers (each replacing its origin's older one)."""
        if not entries:
            return
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO robots (origin, status, body, fetched_at)"
                " VALUES (?, ?, ?, ?)",
                [(o, s.status, s.body, s.fetched_at) for o, s in entries.items()],
            )
