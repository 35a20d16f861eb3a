"""The ``images`` table: the url -> stored key index (with size, hash, type, validators)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

from imgflow.engine.ports import StoredObject, Validators
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.local.index.chunked import rows_in
from imgflow.local.index.connection import Connected


class ImagesTable(Connected):
    """Queries of a database's url index."""

    def lookup(self, urls: Sequence[str]) -> dict[str, StoredObject]:
        """The index rows of any of `urls`."""
        found: dict[str, StoredObject] = {}
        for url, key, size, sha, ctype in rows_in(
            self.conn,
            "SELECT url, key, bytes, sha256, content_type FROM images WHERE url IN ({marks})",
            urls,
        ):
            found[url] = StoredObject(key=key, bytes=size, sha256=sha, content_type=ctype)
        return found

    def stamps(self, urls: Sequence[str]) -> dict[str, tuple[StoredObject, int | None]]:
        """The index rows of any of `urls` (with their validators), each with its file's
        recorded mtime (or None)."""
        found: dict[str, tuple[StoredObject, int | None]] = {}
        for url, key, size, sha, ctype, mtime, etag, modified in rows_in(
            self.conn,
            "SELECT url, key, bytes, sha256, content_type, mtime_ns, etag, last_modified"
            " FROM images WHERE url IN ({marks})",
            urls,
        ):
            stored = StoredObject(key, size, sha, ctype, Validators(etag, modified))
            found[url] = (stored, mtime)
        return found

    def _index(
        self,
        run_id: str,
        records: Sequence[ResultRecord],
        now: float,
        mtimes: Mapping[str, int],
        places: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """Index the records' written images and refresh the validators of those the server
        confirmed (within the caller's transaction). `places` gives the shard and member
        of each key a shard layout stored (NULL in the files layout)."""
        where = places or {}
        stored = [
            (r.url, r.key, r.bytes, r.sha256, r.content_type, run_id, now,
             mtimes.get(r.key or ""), r.etag, r.last_modified, r.width, r.height,
             *where.get(r.key or "", (None, None)))
            for r in records
            if r.outcome.wrote
        ]  # fmt: skip
        confirmed = [
            (r.etag, r.last_modified, r.url) for r in records if r.outcome is Outcome.UNCHANGED
        ]
        self.conn.executemany(
            "INSERT OR REPLACE INTO images (url, key, bytes, sha256, content_type, run_id,"
            " stored_at, mtime_ns, etag, last_modified, width, height, shard, member)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            stored,
        )
        self.conn.executemany(
            "UPDATE images SET etag = ?, last_modified = ? WHERE url = ?", confirmed
        )

    def index_rows(self) -> Iterator[tuple[str, str, int, str, int | None]]:
        """Every index row: (url, key, bytes, sha256, mtime_ns), streamed."""
        yield from self.conn.execute("SELECT url, key, bytes, sha256, mtime_ns FROM images")

    def forget(self, urls: Sequence[str]) -> None:
        """Drop index rows whose files are gone (or unlike their rows); in the same
        transaction, the shards their samples were in are recounted (so marked, then
        rewritten without them: a sample fetched again is never in two shards)."""
        with self.transaction() if not self.conn.in_transaction else contextlib.nullcontext():
            holding = self.shards_holding(urls)
            self.conn.executemany("DELETE FROM images WHERE url = ?", [(u,) for u in urls])
            self.recount_shards(sorted(holding))

    def restamp(self, stamps: Sequence[tuple[int, str]]) -> None:
        """Record files' modification times: (mtime_ns, url) pairs."""
        self.conn.executemany("UPDATE images SET mtime_ns = ? WHERE url = ?", stamps)

    def shard_names(self) -> set[str]:
        """The shard files committed to this folder (imgflow/local/layouts/shards.py)."""
        return {row[0] for row in self.conn.execute("SELECT name FROM shards")}

    def shards_holding(self, urls: Sequence[str]) -> set[str]:
        """The shards the index places these URLs' samples in (before they move)."""
        query = "SELECT DISTINCT shard FROM images WHERE url IN ({marks}) AND shard IS NOT NULL"
        return {row[0] for row in rows_in(self.conn, query, urls)}

    def recount_shards(self, names: Sequence[str]) -> None:
        """Within the caller's transaction: the `samples` and `bytes` of each shard of
        `names` from the rows still placed in it; a shard left with none is no longer
        listed. A shard whose count changed is marked (`shards.marked`), to be rewritten
        without the samples that left it (imgflow/local/layouts/shard_rewrite.py)."""
        for name in names:
            count, size = self.conn.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM images WHERE shard = ?", (name,)
            ).fetchone()
            if count:
                self.conn.execute(
                    "UPDATE shards SET samples = ?, bytes = ?,"
                    " marked = marked OR samples != ? WHERE name = ?",
                    (count, size, count, name),
                )
            else:
                self.conn.execute("DELETE FROM shards WHERE name = ?", (name,))

    def shard_counts(self) -> dict[str, tuple[int, int]]:
        """Each committed shard's (samples, bytes)."""
        rows = self.conn.execute("SELECT name, samples, bytes FROM shards")
        return {name: (samples, size) for name, samples, size in rows}

    def marked_shards(self) -> set[str]:
        """The shards a recount marked, not yet rewritten (local/layouts/shard_rewrite.py)."""
        return {row[0] for row in self.conn.execute("SELECT name FROM shards WHERE marked")}

    def unmark_shards(self, rewritten: Mapping[str, int]) -> None:
        """Marked shards rewritten (name -> their samples): their marks cleared, but where
        a recount changed the count meanwhile."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE shards SET marked = 0 WHERE name = ? AND samples = ?",
                list(rewritten.items()),
            )

    def shard_members(self, name: str) -> set[str]:
        """The members of a shard the index places samples at."""
        rows = self.conn.execute("SELECT member FROM images WHERE shard = ?", (name,))
        return {row[0] for row in rows}

    def places(self) -> Iterator[tuple[str, str, str | None, str | None]]:
        """Every index row's (url, key, shard, member), streamed."""
        yield from self.conn.execute("SELECT url, key, shard, member FROM images")

    def run_ids(self) -> set[str]:
        """The ids of the folder's runs."""
        return {row[0] for row in self.conn.execute("SELECT id FROM runs")}
