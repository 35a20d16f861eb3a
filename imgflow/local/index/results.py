"""The ``results`` table: a run's plan (``pending`` rows) and its records."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence

from imgflow.engine.failures import FailureKind, kind_of_legacy_message
from imgflow.engine.plan import NO_META, Item, meta_view
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.local.index.chunked import rows_in
from imgflow.local.index.connection import Connected
from imgflow.local.index.runs import PENDING
from imgflow.local.index.schema import column_or, columns

_FAILED = Outcome.FAILED.value
# A row's outcome by its value: a dict lookup, not an Enum call per row read back.
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
# What a retry runs again: the records that failed and those that never finished.
RETRIED = (_FAILED, PENDING)

_PlanRow = tuple[str, int, str, str, str]
# The plan's first chunk is small: a run planned while it fetches starts on it at once.
FIRST_CHUNK = 250
_SAVE = (
    "UPDATE results SET {kind}outcome = ?, status_code = ?, bytes = ?, sha256 = ?,"
    " content_type = ?, error = ?, attempts = ?, finished_at = ? WHERE run_id = ? AND url = ?"
)


class ResultsTable(Connected):
    """Queries of the results of a database's runs."""

    _kind_column: str
    _meta_column: str
    _etag_columns: str
    _size_columns: str

    def _prepare_results(self) -> None:
        """Columns an older database opened read-only lacks read as NULL."""
        have = columns(self.conn, "results")
        self._kind_column = column_or("failure_kind", have)
        self._meta_column = column_or("meta", have)
        images = columns(self.conn, "images")
        self._etag_columns = "i.etag, i.last_modified" if "etag" in images else "NULL, NULL"
        self._size_columns = "i.width, i.height" if "width" in images else "NULL, NULL"

    def _insert_plan(self, run_id: str, items: Iterable[Item], chunk: int) -> tuple[int, int]:
        """Insert every item as pending, once per URL: (unique items, items seen).

        Each chunk is its own short transaction, so another run on the same database is
        never kept waiting for long. Metadata is encoded only for the items that have any
        (by sequence number), and a chunk without any binds no meta column at all: binding
        a None costs sqlite3 a failed adaptation per row.
        """
        unique = seen = 0
        buffer: list[_PlanRow] = []
        metas: dict[int, str] = {}
        problems: dict[int, str] = {}
        size = min(chunk, FIRST_CHUNK)  # the first items are there to fetch at once
        for item in items:
            seen += 1
            buffer.append((run_id, seen, item.name, item.url, item.key))
            if item.meta:
                metas[seen] = json.dumps(dict(item.meta))
            if item.problem:
                problems[seen] = item.problem
            if len(buffer) >= size:
                unique += self._insert_pending(buffer, metas, problems)
                buffer.clear()
                metas.clear()
                problems.clear()
                size = chunk
        unique += self._insert_pending(buffer, metas, problems)
        return unique, seen

    def _insert_pending(
        self, rows: Sequence[_PlanRow], metas: dict[int, str], problems: dict[int, str]
    ) -> int:
        """Insert one chunk: items with a problem are failed at once (never fetched)."""
        before = self.conn.total_changes
        with self.transaction():
            if problems:
                failed = [row for row in rows if row[1] in problems]
                rows = [row for row in rows if row[1] not in problems]
                self.conn.executemany(
                    "INSERT OR IGNORE INTO results (run_id, seq, path, url, key, meta, outcome,"
                    f" error, failure_kind, finished_at) VALUES (?, ?, ?, ?, ?, ?, '{_FAILED}',"
                    f" ?, '{FailureKind.INVALID_URL.value}', ?)",
                    [(*row, metas.get(row[1]), problems[row[1]], time.time()) for row in failed],
                )
            if metas:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO results (run_id, seq, path, url, key, meta, outcome)"
                    f" VALUES (?, ?, ?, ?, ?, ?, '{PENDING}')",
                    [(*row, metas.get(row[1])) for row in rows],
                )
            else:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO results (run_id, seq, path, url, key, outcome)"
                    f" VALUES (?, ?, ?, ?, ?, '{PENDING}')",
                    rows,
                )
        return self.conn.total_changes - before

    def pending_batches(self, run_id: str, size: int) -> Iterator[list[Item]]:
        """The run's pending items in input order, a batch at a time (keyset paging)."""
        last = 0
        while True:
            last, batch = self.pending_page(run_id, last, size)
            if not batch:
                return
            yield batch

    def pending_page(self, run_id: str, after: int, size: int) -> tuple[int, list[Item]]:
        """Up to `size` pending items after sequence number `after`, and the last one's."""
        rows = self.conn.execute(
            f"SELECT seq, path, url, key, {self._meta_column} FROM results"
            f" WHERE run_id = ? AND seq > ? AND outcome = '{PENDING}' ORDER BY seq LIMIT ?",
            (run_id, after, size),
        ).fetchall()
        if not rows:
            return after, []
        return rows[-1][0], [_item(*row[1:]) for row in rows]

    def retry_items(self, run_id: str) -> Iterator[Item]:
        """The run's items that failed or never finished, in input order, streamed (a
        table's bad rows, which have no key, are never retried: they would fail again)."""
        cursor = self.conn.execute(
            f"SELECT path, url, key, {self._meta_column} FROM results"
            " WHERE run_id = ? AND outcome IN (?, ?) AND key != '' ORDER BY seq",
            (run_id, *RETRIED),
        )
        for row in cursor:
            yield _item(*row)

    def planned_urls(self, run_id: str, urls: Sequence[str]) -> set[str]:
        """Those of `urls` the run has planned (at most 500 at a time are asked)."""
        marks = ", ".join("?" * len(urls))
        return {
            row[0]
            for row in self.conn.execute(
                f"SELECT url FROM results WHERE run_id = ? AND url IN ({marks})",
                (run_id, *urls),
            )
        }

    def written_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` some run stored or updated (files imgflow wrote)."""
        query = (
            "SELECT DISTINCT key FROM results WHERE key IN ({marks})"
            " AND outcome IN ('stored', 'updated')"
        )
        return {row[0] for row in rows_in(self.conn, query, keys)}

    def count_retried(self, run_id: str) -> int:
        """How many items of the run failed or never finished."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM results WHERE run_id = ? AND outcome IN (?, ?) AND key != ''",
            (run_id, *RETRIED),
        ).fetchone()
        return int(row[0])

    def _save_results(
        self, run_id: str, records: Sequence[ResultRecord], times: Sequence[float]
    ) -> None:
        """Replace the records' pending rows (within the caller's transaction); only
        failures set a failure kind, so the others bind no None for it."""
        done: list[tuple[object, ...]] = []
        failed: list[tuple[object, ...]] = []
        for r, at in zip(records, times, strict=True):
            row = (
                r.outcome.value,
                r.status_code,
                r.bytes,
                r.sha256,
                r.content_type,
                r.error,
                r.attempts,
                at,
                run_id,
                r.url,
            )
            if r.outcome is Outcome.FAILED:
                failed.append((r.failure_kind, *row))
            else:
                done.append(row)
        self.conn.executemany(_SAVE.format(kind=""), done)
        if failed:
            self.conn.executemany(_SAVE.format(kind="failure_kind = ?, "), failed)

    def records(self, run_id: str, only_failed: bool = False) -> Iterator[ResultRecord]:
        """The run's records in input order, streamed (pending ones are left out)."""
        which = f"= '{_FAILED}'" if only_failed else f"!= '{PENDING}'"
        kind = "NULL" if self._kind_column == "NULL" else "r." + self._kind_column
        meta = "NULL" if self._meta_column == "NULL" else "r." + self._meta_column
        # the server's validators of an image the run wrote or kept, from the images table
        cursor = self.conn.execute(
            "SELECT r.url, r.path, r.outcome, r.status_code, r.key, r.bytes, r.sha256,"
            f" r.content_type, r.error, r.attempts, {kind}, {self._etag_columns},"
            f" {self._size_columns}, {meta}"
            " FROM results r LEFT JOIN images i ON i.url = r.url AND r.outcome != ?"
            f" WHERE r.run_id = ? AND r.outcome {which} ORDER BY r.seq",
            (_FAILED, run_id),
        )
        for row in cursor:
            failed = row[2] == _FAILED
            yield ResultRecord(
                url=row[0],
                path=row[1],
                outcome=_OUTCOMES[row[2]],
                status_code=row[3],
                key=row[4] if not failed else None,
                bytes=row[5],
                sha256=row[6],
                content_type=row[7],
                error=row[8],
                attempts=row[9],
                failure_kind=failure_kind(row[10], row[8]) if failed else None,
                etag=row[11],
                last_modified=row[12],
                width=row[13],
                height=row[14],
                meta=json.loads(row[15]) if row[15] else None,
            )

    def failure_messages(self, run_id: str) -> Iterator[str]:
        """The run's failure messages in input order."""
        cursor = self.conn.execute(
            "SELECT error FROM results WHERE run_id = ? AND outcome = ? ORDER BY seq",
            (run_id, _FAILED),
        )
        for (error,) in cursor:
            yield str(error)


def failure_kind(kind: str | None, message: str | None) -> FailureKind:
    """A failed row's kind as recorded, else (rows from before kinds) read from its message."""
    return FailureKind(kind) if kind else kind_of_legacy_message(message or "")


def _item(name: str, url: str, key: str, meta: str | None) -> Item:
    """An item read back: the name is its path, unless it is its URL (no path)."""
    return Item(
        url=url,
        key=key,
        meta=meta_view(json.loads(meta)) if meta else NO_META,
        path=name if name != url else "",
    )
