"""Shard commits, in process: a shard is fsynced before it is renamed, renamed inside the
transaction that records its samples (a failed commit leaves no shard at a final name),
a shard the index never listed is removed by the next run, captions become `.txt`
members, and the migration adds the shard columns whatever ran before it."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import tarfile
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from support.faultserver import FaultServer, Ok
from support.shard_files import shard_urls
from support.sources import Urls

from imgflow.demo.images import make_gif
from imgflow.engine.keys import key_for
from imgflow.engine.plan import Item
from imgflow.engine.samples import sample_key
from imgflow.engine.settings import FetchConfig
from imgflow.local.check import check
from imgflow.local.index import Database
from imgflow.local.index import schema as index_schema
from imgflow.local.job import LocalJob, LocalRunResult
from imgflow.local.layouts import shards as shards_module
from imgflow.local.layouts.parquet import parquet_layout
from imgflow.local.layouts.shards import ShardLayout
from imgflow.local.layouts.webdataset import webdataset_layout
from imgflow.local.runner import run_job
from imgflow.local.safefs import StorageError
from imgflow.local.settings import RunSettings

QUICK = FetchConfig(retries=0, timeout=2, total_timeout=4)


def _items(server: FaultServer, names: list[str], captions: bool = True) -> list[Item]:
    items = []
    for i, name in enumerate(names):
        server.set(f"/{name}", Ok(make_gif(name)))
        url = f"{server.base_url}/{name}"
        meta = {"caption": f"a flag {name}", "n": i} if captions and i % 2 == 0 else {"n": i}
        items.append(Item(url=url, key=key_for(url), meta=MappingProxyType(meta)))
    return items


def _run(items: list[Item], data: Path, layout: ShardLayout, fsync: bool = True) -> LocalRunResult:
    job = LocalJob(source=Urls(items), concurrency=4, batch_size=4, max_batches=2)
    return run_job(job, RunSettings(fetch=QUICK, fsync=fsync, layout=layout), data)


def _tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_captions_and_metadata_go_into_the_samples(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    names = [f"{i}.gif" for i in range(5)]
    items = _items(fault_server, names)
    result = _run(items, tmp_path, webdataset_layout(3))
    assert result.summary.stored == 5
    shards = tmp_path / "shards"
    assert sorted(p.name for p in shards.glob("*.tar")) == ["00000.tar", "00001.tar"]
    members: dict[str, bytes] = {}
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for info in tar:
                read = tar.extractfile(info)
                assert read is not None
                members[info.name] = read.read()
    for i, item in enumerate(items):
        skey = sample_key(item.url)
        meta = json.loads(members[f"{skey}.json"])
        assert meta["url"] == item.url and meta["meta"]["n"] == i
        assert meta["sha256"] == hashlib.sha256(members[f"{skey}.gif"]).hexdigest()
        assert (meta["width"], meta["height"]) == (16, 11) or meta["width"] > 0
        if i % 2 == 0:
            assert members[f"{skey}.txt"] == f"a flag {names[i]}".encode()
        else:
            assert f"{skey}.txt" not in members


def test_a_shard_is_fsynced_before_it_is_renamed(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, object]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("rename", str(dst)))
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    _run(_items(fault_server, ["a.gif", "b.gif"]), tmp_path, webdataset_layout(10))
    renamed = events.index(("rename", "00000.tar"))
    synced = [
        i for i, (kind, what) in enumerate(events) if kind == "fsync" and str(what).endswith(".tar")
    ]
    assert synced and synced[0] < renamed, events


def test_a_commit_that_fails_after_the_rename_leaves_no_shard_and_no_row(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Database.record_shard

    def failing(self: Database, *args: Any, **kwargs: Any) -> None:
        publish = kwargs["publish"]

        def then_fail() -> None:
            publish()
            assert (tmp_path / "shards" / kwargs["shard"]).exists()
            raise OSError(errno.EIO, "the commit failed")

        kwargs["publish"] = then_fail
        real(self, *args, **kwargs)

    monkeypatch.setattr(Database, "record_shard", failing)
    with pytest.raises(StorageError, match="the commit failed"):
        _run(_items(fault_server, ["a.gif", "b.gif"]), tmp_path, webdataset_layout(10))
    assert sorted(os.listdir(tmp_path / "shards")) == []
    with sqlite3.connect(tmp_path / "imgflow.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM shards").fetchone()[0] == 0

    monkeypatch.setattr(Database, "record_shard", real)
    again = _run(_items(fault_server, ["a.gif", "b.gif"]), tmp_path, webdataset_layout(10))
    assert again.summary.stored == 2
    assert len(_tar_names(tmp_path / "shards" / "00000.tar")) == 5  # one caption


def test_a_shard_renamed_but_never_committed_is_removed_by_the_next_run(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    items = _items(fault_server, ["a.gif", "b.gif", "c.gif"])
    _run(items[:2], tmp_path, webdataset_layout(10))
    shards = tmp_path / "shards"
    # what a kill between the rename and the index's commit leaves: a shard no row lists
    with sqlite3.connect(tmp_path / "imgflow.db") as conn:
        conn.execute("DELETE FROM shards")
        conn.execute("UPDATE images SET shard = NULL")
    second = _run(items, tmp_path, webdataset_layout(10))
    assert second.summary.stored == 3  # fetched again: nothing of them was committed
    assert sorted(p.name for p in shards.glob("*.tar")) == ["00000.tar"]
    assert len(_tar_names(shards / "00000.tar")) == 8  # two captions
    report = check(tmp_path)
    assert (report.checked, report.intact, report.problems) == (3, 3, 0)


def test_every_url_once_across_shards_when_runs_repeat(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    items = _items(fault_server, [f"{i}.gif" for i in range(7)])
    _run(items[:4], tmp_path, webdataset_layout(3))
    second = _run(items, tmp_path, webdataset_layout(3))
    third = _run(items, tmp_path, webdataset_layout(3))
    urls = shard_urls(tmp_path / "shards")
    assert sorted(urls) == sorted(item.url for item in items)
    # A rerun skips what a shard holds: it does not fetch it again (and rewrite it away).
    assert (second.summary.skipped, second.summary.stored) == (4, 3)
    assert (third.summary.skipped, third.summary.stored) == (7, 0)


def test_parquet_shards_carry_the_rows_and_the_bytes(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    items = _items(fault_server, [f"{i}.gif" for i in range(5)])
    result = _run(items, tmp_path, parquet_layout(2), fsync=False)
    assert result.summary.stored == 5
    files = sorted((tmp_path / "shards").glob("*.parquet"))
    assert [p.name for p in files] == ["00000.parquet", "00001.parquet", "00002.parquet"]
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    assert sorted(row["url"] for row in rows) == sorted(item.url for item in items)
    for row in rows:
        assert hashlib.sha256(row["image"]).hexdigest() == row["sha256"]
        assert row["image"] == make_gif(row["url"].rsplit("/", 1)[1])
    captions = [row["caption"] for row in rows if row["caption"] is not None]
    assert len(captions) == 3
    assert check(tmp_path).intact == 5


def test_the_migration_adds_the_shard_columns_whatever_ran_before(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE images (url TEXT PRIMARY KEY, key TEXT, shard TEXT)")
    index_schema._shards(conn)
    index_schema._shards(conn)  # again: a no-op
    assert {"shard", "member"} <= index_schema.columns(conn, "images")
    assert index_schema.columns(conn, "shards")
    conn.close()


def test_sample_keys_are_stable_and_have_no_dot() -> None:
    assert sample_key("http://a/b.gif") == sample_key("http://a/b.gif")
    assert "." not in sample_key("http://a/b.gif")
    assert shards_module.extension("image/jpeg", "x/y.png") == "jpg"
    assert shards_module.extension(None, "x/y.png") == "png"


def test_the_report_makes_thumbnails_from_shards(fault_server: FaultServer, tmp_path: Path) -> None:
    from imgflow.report import local, write_local

    items = _items(fault_server, [f"{i}.gif" for i in range(5)])
    result = _run(items, tmp_path, webdataset_layout(2), fsync=False)
    assert local.make_thumbnails(tmp_path, result.run_id) == 5
    page = write_local(tmp_path, result.run_id, tmp_path / "r.html", embed_thumbnails=True)
    assert page.read_text().count('"data:image/webp;base64,') == 5


def test_an_image_over_max_bytes_fails_and_never_enters_a_shard(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    items = _items(fault_server, ["a.gif", "b.gif"])
    big = make_gif("big", 40, target_bytes=50_000)
    fault_server.set("/big.gif", Ok(big))
    url = f"{fault_server.base_url}/big.gif"
    items.append(Item(url=url, key=key_for(url)))
    job = LocalJob(source=Urls(items), concurrency=2, batch_size=4, max_batches=1)
    small = FetchConfig(retries=0, timeout=2, total_timeout=4, max_bytes=20_000)
    result = run_job(
        job, RunSettings(fetch=small, fsync=False, layout=webdataset_layout()), tmp_path
    )
    assert (result.summary.stored, result.summary.failed) == (2, 1)
    names = _tar_names(tmp_path / "shards" / "00000.tar")
    assert not [n for n in names if n.startswith(sample_key(url))]
    assert len([n for n in names if n.endswith(".json")]) == 2


def test_images_stored_as_files_are_kept_when_the_layout_changes(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    from imgflow.local.layouts.files import FilesLayout

    items = _items(fault_server, ["a.gif", "b.gif"])
    job = LocalJob(source=Urls(items), concurrency=2, batch_size=4, max_batches=1)
    files = run_job(job, RunSettings(fetch=QUICK, fsync=False, layout=FilesLayout()), tmp_path)
    assert files.summary.stored == 2
    more = _items(fault_server, ["a.gif", "b.gif", "c.gif"])
    sharded = _run(more, tmp_path, webdataset_layout(10), fsync=False)
    assert (sharded.summary.stored, sharded.summary.skipped) == (1, 2)
    assert len(_tar_names(tmp_path / "shards" / "00000.tar")) == 3  # c.gif (a caption)
    report = check(tmp_path)
    assert (report.checked, report.intact, report.problems) == (3, 3, 0)
