"""A sample is never in two shards, whichever way a run stores: with `--workers N` a
refresh, or a sample found not intact (also by an earlier run that never fetched it
again), is cut from its old shard as in one process; a files-layout refresh cuts the
shard sample it replaces; an old shard is rewritten at most once per run, whatever the
order of the refresh; a start reads only the marked shards' stats files
(imgflow/local/layouts/shard_rewrite.py). In process (workers are real processes), from
the loopback fault server; shards read back with the webdataset package and pyarrow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.faultserver import FaultServer, Status
from support.sources import Urls
from test_shards_rewrite import LAYOUTS, QUICK, _serve, assert_once, read_shards

from imgflow.engine.plan import Item
from imgflow.local.check import check
from imgflow.local.layouts import shard_rewrite
from imgflow.local.layouts.base import Layout
from imgflow.local.layouts.files import FilesLayout
from imgflow.local.runner import LocalJob, LocalRunResult, run_job
from imgflow.local.settings import RunSettings


def _run(
    items: list[Item], data: Path, layout: Layout, *, refresh: bool = False, workers: int = 1
) -> Any:
    job = LocalJob(
        source=Urls(items), concurrency=4, batch_size=4, max_batches=2, refresh=refresh,
        workers=workers,
    )  # fmt: skip
    settings = RunSettings(fetch=QUICK, fsync=False, layout=layout)
    result: LocalRunResult = run_job(job, settings, data)
    return result.summary


def test_a_refresh_on_two_workers_leaves_every_url_in_one_shard(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    names, layout = [f"{i}.gif" for i in range(8)], "parquet"
    items = _serve(fault_server, names)
    assert _run(items, tmp_path, LAYOUTS[layout](4)).stored == 8
    _serve(fault_server, names, names[1:6])
    summary = _run(items, tmp_path, LAYOUTS[layout](4), refresh=True, workers=2)
    assert summary.stored == 5
    assert_once(tmp_path, [item.url for item in items])


def _spoil_first_digest(data: Path) -> str:
    """The first row of the first shard's table gets another sha256: that sample is not
    intact any longer; its URL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data / "shards" / "00000.parquet"
    table = pq.read_table(path)
    digests = table.column("sha256").to_pylist()
    digests[0] = "0" * 64
    index = table.schema.get_field_index("sha256")
    pq.write_table(table.set_column(index, "sha256", pa.array(digests)), path)
    return str(table.column("url").to_pylist()[0])


def test_a_sample_found_not_intact_then_fetched_by_a_later_run_on_workers_is_in_one_shard(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """Run 2 finds a sample not intact (its row forgotten) but cannot fetch it (404); run
    3, on two workers, fetches only it: its old sample is cut, though run 3 never looked
    at the shard that held it."""
    names = [f"{i}.gif" for i in range(4)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, LAYOUTS["webdataset"](10))
    spoiled = _spoil_first_digest(tmp_path)
    fault_server.set(spoiled.removeprefix(fault_server.base_url), Status(404))
    second = _run(items, tmp_path, LAYOUTS["webdataset"](10))
    assert (second.failed, second.skipped) == (1, 3), second
    _serve(fault_server, names)
    third = _run([i for i in items if i.url == spoiled], tmp_path, LAYOUTS["webdataset"](10),
                 workers=2)  # fmt: skip
    assert third.stored == 1
    assert_once(tmp_path, [i.url for i in items])


def test_a_files_layout_refresh_cuts_the_shard_sample_it_replaces(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    names = [f"{i}.gif" for i in range(4)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, LAYOUTS["webdataset"](10))
    _serve(fault_server, names, names)  # (a new version of each: no stand-in checks validators)
    summary = _run(items, tmp_path, FilesLayout(), refresh=True)
    assert summary.stored == 4  # the files layout holds none of them: all fetched again
    assert not (tmp_path / "shards" / "00000.tar").exists()  # left with no sample
    assert read_shards(tmp_path) == {}
    report = check(tmp_path)
    assert (report.intact, report.problems) == (4, 0)


@pytest.mark.parametrize("layout", ["webdataset", "parquet"])
def test_a_refresh_in_reverse_order_rewrites_each_old_shard_at_most_once(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    names = [f"{i}.gif" for i in range(12)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, LAYOUTS[layout](4))  # 00000..00002, 4 samples each
    rewrites: Counter[str] = Counter()
    real = shard_rewrite.rewrite_shard

    def counted(shards: int, name: str, *args: Any, **kw: Any) -> None:
        rewrites[name] += 1
        real(shards, name, *args, **kw)

    monkeypatch.setattr(shard_rewrite, "rewrite_shard", counted)
    changed = [n for i, n in enumerate(names) if i % 4 != 3]  # 3 of each old shard
    _serve(fault_server, names, changed)
    # reversed, new shards of 2: each commit takes samples from an old shard it shares
    again = list(reversed(items))
    summary = _run(again, tmp_path, LAYOUTS[layout](2), refresh=True)
    assert summary.stored == 9
    assert rewrites and max(rewrites.values()) == 1, rewrites
    assert_once(tmp_path, [i.url for i in items])


def test_a_start_reads_only_the_stats_of_marked_shards(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"{i}.gif" for i in range(6)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, LAYOUTS["webdataset"](2))  # three shards
    read: list[str] = []
    real = shard_rewrite.stats_samples

    def counted(shards: int, name: str) -> int | None:
        read.append(name)
        return real(shards, name)

    monkeypatch.setattr(shard_rewrite, "stats_samples", counted)
    assert _run(items, tmp_path, LAYOUTS["webdataset"](2)).skipped == 6
    assert read == []
    _serve(fault_server, names, names[2:3])
    assert _run(items, tmp_path, LAYOUTS["webdataset"](2), refresh=True).stored == 1
    assert read == ["00001.tar"]  # the one shard its commit marked, at the run's end
    assert _run(items, tmp_path, LAYOUTS["webdataset"](2)).skipped == 6
    assert read == ["00001.tar"]  # its mark cleared once rewritten
    assert_once(tmp_path, [i.url for i in items])


def test_an_index_from_before_the_marks_has_its_pending_rewrite_done_after_the_upgrade(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh whose rewrite never happened (a kill), in an index of an imgflow without
    marks: the upgrade marks every shard, so the next start compares each and cuts the
    superseded sample."""
    import sqlite3

    names = [f"{i}.gif" for i in range(4)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, LAYOUTS["webdataset"](2))

    def killed(*args: Any, **kw: Any) -> None:
        raise OSError("killed")

    monkeypatch.setattr(shard_rewrite, "rewrite_shard", killed)
    _serve(fault_server, names, names[:1])
    assert _run(items, tmp_path, LAYOUTS["webdataset"](2), refresh=True).stored == 1
    monkeypatch.undo()
    assert len(read_shards(tmp_path)[items[0].url]) == 2  # not cut yet
    with sqlite3.connect(tmp_path / "imgflow.db") as conn:
        conn.execute("ALTER TABLE shards DROP COLUMN marked")
        conn.execute("PRAGMA user_version = 6")
    assert _run(items, tmp_path, LAYOUTS["webdataset"](2)).skipped == 4
    assert_once(tmp_path, [i.url for i in items])
