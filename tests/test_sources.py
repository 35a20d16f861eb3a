"""Sources: a job's items from any Source, planned and run, recorded with the source and
each item's metadata; the index keeps one result per URL of a run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from test_local_run import make_cfg

from imgflow.backends.local import run_settings
from imgflow.demo.server import StaticServer
from imgflow.engine.failures import FailureKind
from imgflow.engine.keys import key_for
from imgflow.engine.messages import not_found
from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.local.folder import DB_NAME
from imgflow.local.index import Database
from imgflow.local.job import LocalJob
from imgflow.local.runner import run_job
from imgflow.sources.base import Source
from imgflow.sources.job_json import from_job
from imgflow.sources.paths import from_paths_file


class UrlSource:
    """A source of full URLs with metadata, as a table of URLs is: no base URL, no paths."""

    def __init__(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        self.rows = rows
        self.count = len(rows)
        self.concurrency: int | None = None
        self.base_url: str | None = None

    def items(self) -> Iterator[Item]:
        for url, meta in self.rows:
            yield Item(url, key_for(url), MappingProxyType(meta))

    def describe(self) -> dict[str, Any]:
        return {"kind": "urls", "rows": self.count}

    def cleanup(self) -> None:
        pass


def test_a_sources_items_run_with_the_source_in_the_run_and_meta_in_each_result(
    flag_server: StaticServer, tmp_path: Path
) -> None:
    rows: list[tuple[str, dict[str, Any]]] = [
        (flag_server.url("ad/ad.gif"), {"caption": "Andorra", "n": 1}),
        (flag_server.url("ae/ae.gif"), {}),
        (flag_server.url("zz/zz.gif"), {"caption": "missing", "tags": ["a", "b"]}),
        (flag_server.url("ad/ad.gif"), {"caption": "again"}),  # a duplicate URL
    ]
    source: Source = UrlSource(rows)
    job = LocalJob(source, concurrency=2, batch_size=2, max_batches=2)
    result = run_job(job, run_settings(make_cfg()), tmp_path)
    assert (result.summary.total, result.summary.stored, result.summary.failed) == (3, 2, 1)
    assert result.duplicates == 1

    db = Database(tmp_path / DB_NAME, readonly=True)
    try:
        info = db.run_info(result.run_id)
        assert info is not None
        assert info.source == {"kind": "urls", "rows": 4} and info.base_url is None
        records = list(db.records(result.run_id))
        assert [r.path for r in records] == [url for url, _ in rows[:3]]  # the name: the URL
        failed = [r for r in records if r.outcome is Outcome.FAILED]
        assert [r.failure_kind for r in failed] == [FailureKind.NOT_FOUND]
    finally:
        db.close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        metas = conn.execute(
            "SELECT meta FROM results WHERE run_id = ? ORDER BY seq", (result.run_id,)
        ).fetchall()
    # The first spelling of a URL is kept; an empty meta is stored as NULL.
    assert metas == [('{"caption": "Andorra", "n": 1}',), (None,), (metas[2][0],)]
    assert metas[2][0] is not None and '"tags": ["a", "b"]' in metas[2][0]


def test_planned_items_read_back_whole_and_one_per_url(tmp_path: Path) -> None:
    db = Database(tmp_path / DB_NAME)
    try:
        db.create_run("r", UrlSource([]), 1, 10, 1)
        url = "https://h.example/a.gif"
        items = [
            Item(url, key_for(url), MappingProxyType({"caption": "a", "size": [1, 2]})),
            Item("https://h.example/p/b.gif", "h.example/p/b.gif", path="p/b.gif"),
            Item(url, key_for(url), path="a.gif"),  # the same URL by another name
        ]
        assert db.plan("r", items) == (2, 1)
        (batch,) = list(db.pending_batches("r", 10))
        assert batch == items[:2]
        assert dict(batch[0].meta) == {"caption": "a", "size": [1, 2]} and batch[0].path == ""
        assert batch[1].path == "p/b.gif" and not batch[1].meta
    finally:
        db.close()


def test_a_failure_kind_is_recorded_and_read_back(tmp_path: Path) -> None:
    db = Database(tmp_path / DB_NAME)
    url = "https://h.example/a.gif"
    try:
        db.create_run("r", from_job("https://h.example", ["a.gif"], None), 1, 10, 1)
        db.plan("r", [Item(url, key_for(url), path="a.gif")])
        # A message of one class, a kind of another: the kind read back is the one written.
        failure = ResultRecord(
            url, "a.gif", Outcome.FAILED, 404, error=not_found(url), attempts=1,
            failure_kind=FailureKind.THROTTLED,
        )  # fmt: skip
        db.record("r", [failure])
        assert list(db.records("r")) == [failure]
        assert [i.url for i in db.retry_items("r")] == [url]
    finally:
        db.close()


def test_a_paths_source_describes_itself_and_keeps_another_key_base(tmp_path: Path) -> None:
    paths = tmp_path / "paths.txt"
    paths.write_text("# flags\nad/ad.gif\n\n/img/ae.gif\n")
    source = from_paths_file("http://127.0.0.1:40123/img/", str(paths), "http://127.0.0.1:8765")
    assert source.count == 2 and source.concurrency is None
    assert source.describe() == {
        "kind": "paths",
        "baseUrl": "http://127.0.0.1:40123/img",
        "file": str(paths),
        "keyBase": "http://127.0.0.1:8765",
        "path": str(paths),  # where a retry reads it again
    }
    items = list(source.items())
    assert items == list(source.items())  # read again, the same
    assert [i.url for i in items] == [
        "http://127.0.0.1:40123/img/ad/ad.gif",
        "http://127.0.0.1:40123/img/img/ae.gif",
    ]
    assert items[0].key == "127.0.0.1:8765/ad/ad.gif"  # keys from the key base (the demo's)
    warning = source.warning()
    assert warning is not None and "repeats the base URL's path" in warning
    job = from_job("https://h.example", ["a.gif"], 3, "job.json")
    assert job.describe() == {"kind": "job", "baseUrl": "https://h.example", "file": "job.json"}
    assert job.concurrency == 3 and [i.path for i in job.items()] == ["a.gif"]
