"""What the shard path does once a sample (its cost per image, issue 25): the sizes the
engine read from the image's header go into the sample as they are (no second read, which
disagreed with the index on a rotated JPEG); a sample's columns are made once; a shard's
members reach its file in large writes."""

from __future__ import annotations

import json
import sqlite3
import struct
import tarfile
from pathlib import Path

import pytest
from support.faultserver import FaultServer
from support.replies import Ok
from support.sources import Urls

from imgflow.engine.keys import key_for
from imgflow.engine.plan import Item
from imgflow.engine.samples import sample_key
from imgflow.engine.settings import FetchConfig
from imgflow.local.job import LocalJob
from imgflow.local.layouts.webdataset import webdataset_layout
from imgflow.local.runner import run_job
from imgflow.local.settings import RunSettings

QUICK = FetchConfig(retries=0, timeout=2, total_timeout=4)


def rotated_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose frame is `width` x `height` with an EXIF orientation of 6 (shown turned a
    quarter: imagesize's default reading swaps the two)."""
    tiff = b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x0112, 3, 1, 6)
    app1 = b"Exif\0\0" + tiff + struct.pack("<I", 0)
    frame = b"\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00"
    return b"".join((
        b"\xff\xd8",
        b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1,
        b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame,
        b"\xff\xda\x00\x02",
        b"\xff\xd9",
    ))  # fmt: skip


def test_a_samples_sizes_are_the_ones_its_index_row_has(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/turned.jpg", Ok(rotated_jpeg(20, 10), content_type="image/jpeg"))
    url = f"{fault_server.base_url}/turned.jpg"
    job = LocalJob(
        source=Urls([Item(url=url, key=key_for(url))]), concurrency=1, batch_size=1, max_batches=1
    )
    settings = RunSettings(fetch=QUICK, fsync=False, layout=webdataset_layout(10))
    assert run_job(job, settings, tmp_path).summary.stored == 1
    with tarfile.open(tmp_path / "shards" / "00000.tar") as tar:
        read = tar.extractfile(f"{sample_key(url)}.json")
        assert read is not None
        sample = json.loads(read.read())
    table = sqlite3.connect(tmp_path / "imgflow.db")
    try:
        row = table.execute("SELECT width, height FROM images WHERE url = ?", (url,)).fetchone()
    finally:
        table.close()
    assert row == (20, 10)  # the frame's own sizes, as the engine reads them
    assert (sample["width"], sample["height"]) == row


def test_a_shards_small_members_reach_its_file_in_large_writes(tmp_path: Path) -> None:
    """Samples appended to the open shard are held in its file's buffer (a megabyte): tens
    of small images reach the file in one write, not a write or more each."""
    import hashlib

    from imgflow.demo.images import make_gif
    from imgflow.engine.records import Outcome, ResultRecord
    from imgflow.local.folder import DataFolder
    from imgflow.local.safefs import subfolder

    folder = DataFolder(tmp_path / "data")
    run_tmp = subfolder(folder.folder("tmp"), "r1")
    store = webdataset_layout(1000).open_run(folder, run_tmp, fsync=False)
    image = make_gif("a flag") * 8  # a few kilobytes
    for i in range(40):
        url = f"http://127.0.0.1:9/{i}.gif"
        key = key_for(url)
        store.put(key, image, "image/gif")
        record = ResultRecord(
            url=url, path=key, outcome=Outcome.STORED, status_code=200, key=key,
            bytes=len(image), sha256=hashlib.sha256(image).hexdigest(), content_type="image/gif",
        )  # fmt: skip
        store.record([record], [0.0], {})
    (shard,) = (tmp_path / "data" / "tmp" / "r1").glob("shard-*.tar")
    assert 40 * len(image) < 1 << 20
    assert shard.stat().st_size == 0  # all forty still in the buffer
    store.close()


def test_a_samples_columns_are_made_once_and_each_caller_gets_its_own() -> None:
    from imgflow.local.layouts.shard_format import Sample

    url = "http://127.0.0.1:9/a.gif"
    sample = Sample(url, "a.gif", b"GIF89a", None, 6, "00", "image/gif", None, None, {})
    first = sample.row()
    first["member"] = "x"  # what a writer adds (the parquet writer adds its image too)
    assert "member" not in sample.row()
    assert sample.skey == sample_key(url) == first["sample_key"]


def test_held_images_are_flushed_into_the_shard_every_few_hundred_records(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored image is held until its record is flushed into the open shard: a fast run
    (here one batch, and no flush by time) holds at most FLUSH_RECORDS images plus those in
    flight, not every image stored since the last flush."""
    from imgflow.demo.images import make_gif
    from imgflow.local import runner
    from imgflow.local.layouts import shards

    monkeypatch.setattr(runner, "FLUSH_SECONDS", 1e9)
    held: list[int] = []
    stage = shards.ShardStore._stage

    def counted(self: shards.ShardStore, *args: object) -> None:
        stage(self, *args)  # type: ignore[arg-type]
        held.append(len(self._staged))

    monkeypatch.setattr(shards.ShardStore, "_stage", counted)
    image = make_gif("a flag")
    count = 3 * shards.FLUSH_RECORDS
    for i in range(count):
        fault_server.set(f"/{i}.gif", Ok(image, content_type="image/gif"))
    urls = [f"{fault_server.base_url}/{i}.gif" for i in range(count)]
    job = LocalJob(
        source=Urls([Item(url=u, key=key_for(u)) for u in urls]),
        concurrency=16, batch_size=count, max_batches=1,
    )  # fmt: skip
    settings = RunSettings(fetch=QUICK, fsync=False, layout=webdataset_layout(10 * count))
    assert run_job(job, settings, tmp_path).summary.stored == count
    assert len(held) == count
    assert max(held) <= shards.FLUSH_RECORDS + 16, max(held)


def test_an_open_shard_holds_only_its_urls_in_memory(tmp_path: Path) -> None:
    """A shard of 10,000 samples is committed with its samples' records, members and
    metadata; until then they are in its log on disk (imgflow/local/layouts/shard_log.py),
    and it holds, per sample, a reference to its URL: measured by tracemalloc, records and
    metadata made first."""
    import gc
    import hashlib
    import tracemalloc

    from imgflow.demo.images import make_gif
    from imgflow.engine.records import Outcome, ResultRecord
    from imgflow.local.folder import DataFolder
    from imgflow.local.safefs import subfolder

    folder = DataFolder(tmp_path / "data")
    run_tmp = subfolder(folder.folder("tmp"), "r1")
    store = webdataset_layout(10_000).open_run(folder, run_tmp, fsync=False)
    image = make_gif("a flag")
    digest = hashlib.sha256(image).hexdigest()
    count = 2000
    urls = [f"http://127.0.0.1:9/some/folder/{i}.gif" for i in range(count)]
    records = [
        ResultRecord(
            url=url, path=key_for(url), outcome=Outcome.STORED, status_code=200,
            key=key_for(url), bytes=len(image), sha256=digest, content_type="image/gif",
            width=1, height=1,
        )
        for url in urls
    ]  # fmt: skip
    metas = {url: {"caption": f"a caption of image {i}", "id": i} for i, url in enumerate(urls)}
    store.put(records[0].key or "", image, "image/gif")
    store.record(records[:1], [0.0], metas)  # the shard's file and buffers, opened
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for record in records[1:]:
            store.put(record.key or "", image, "image/gif")
            store.record([record], [0.0], metas)
        gc.collect()  # (only what is still reachable counts)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        store.close()
    per_sample = held / (count - 1)
    assert per_sample < 48, f"{per_sample:.0f} bytes held per sample of the open shard"
