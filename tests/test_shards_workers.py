"""Shard layouts on worker processes (`--layout webdataset|parquet --workers 2`), the CLI as
a process against real nginx and the loopback fault server: each worker writes shards of
its own, the coordinator (the index's one writer) numbers and commits them; every URL in
exactly one shard, read back by tarfile, webdataset and pyarrow; kill -9 of a worker;
Ctrl-C commits each worker's partial shard."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.cli_run import FAST_ENV, cli_argv, cli_env, run_cli, site
from support.faultserver import FaultServer
from support.processes import reaped, signalled
from test_shards import _check, _index, _paths, _samples, _site_nginx
from test_workers import GIF, alive, serve, wait_for, workers_of


def _shard_names(data: Path, layout: str) -> list[str]:
    suffix = ".tar" if layout == "webdataset" else ".parquet"
    names = sorted(p.name for p in (data / "shards").glob(f"*{suffix}"))
    if layout == "webdataset":
        return names
    return [n for n in names if not (data / "shards" / f"{n[:-8]}.tar").exists()]


def _one_shard_each(data: Path, layout: str, urls: list[str]) -> dict[str, Any]:
    """Every URL in exactly one shard, as the index says; the shards numbered 0, 1, ...
    (one number each, whichever worker wrote it)."""
    samples = _samples(data, layout)
    assert sorted(samples) == sorted(urls)
    assert all(len(found) == 1 for found in samples.values()), samples
    index = _index(data)
    for url, [meta] in samples.items():
        member = meta["member"] if layout == "webdataset" else index[url][1]
        assert index[url] == (meta["shard"], member, meta["sha256"])
    names = _shard_names(data, layout)
    assert [int(n.split(".")[0]) for n in names] == list(range(len(names))), names
    for name in names:
        stem = name.split(".")[0]
        stats = json.loads((data / "shards" / f"{stem}_stats.json").read_text())
        assert stats["shard"] == name
    return samples


def test_two_workers_write_parquet_shards_and_every_url_is_in_exactly_one(
    tmp_path: Path,
) -> None:
    count, layout = 40, "parquet"
    root = site(tmp_path, count)
    _paths(tmp_path, [f"{i}.gif" for i in range(count)])
    data = tmp_path / "data"
    with _site_nginx(tmp_path, root) as web:
        done = run_cli(
            "run", "--base-url", web.url(0, "/"), "--paths-file", "paths.txt", "-o", "json",
            "--data-dir", "data", "--layout", layout, "--workers", "2", "--shard-size", "6",
            "--batch-size", "4",
            cwd=tmp_path, env=FAST_ENV, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        urls = [web.url(0, f"/{i}.gif") for i in range(count)]
    assert done.returncode == 0, done.stderr
    assert "one process" not in done.stderr and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["summary"]["stored"] == count
    _one_shard_each(data, layout, urls)
    assert not list((data / "tmp").iterdir())


def _writing(data: Path, pid: int) -> bool:
    """Whether worker `pid` has a shard open in its tmp folder."""
    return any(
        name.startswith("shard-")
        for folder in (data / "tmp").glob(f"*/worker-{pid}")
        for name in os.listdir(folder)
    )


def _start(server: FaultServer, tmp_path: Path, layout: str, count: int, *flags: str) -> Any:
    paths = serve(server, count, delay=0.1)
    _paths(tmp_path, paths)
    argv = cli_argv(
        "run", "--base-url", server.url("/w"), "--paths-file", str(tmp_path / "paths.txt"),
        "--data-dir", str(tmp_path / "data"), "-o", "json", "--layout", layout,
        "--workers", "2", "-c", "4", *flags,
    )  # fmt: skip
    proc = subprocess.Popen(
        argv, env=cli_env(FAST_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        **signalled(),
    )  # fmt: skip
    return proc, [server.url(f"/w/{p}") for p in paths]


def test_a_killed_worker_leaves_no_shard_and_its_samples_run_again(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """kill -9 of a worker with a shard half written in its tmp folder: no shard of its at
    a final name but those committed whole; its uncommitted samples are fetched again by
    the other workers, and the run ends with every URL in exactly one shard (tarfile and
    the webdataset package read them)."""
    import webdataset as wds

    layout = "webdataset"
    proc, urls = _start(
        fault_server, tmp_path, layout, 60, "--shard-size", "15", "--batch-size", "5"
    )
    with reaped(proc):
        workers = workers_of(proc, 2)
        assert fault_server.wait_for_requests(30, timeout=30)
        # whichever worker has a shard open: how the coordinator hands out batches decides
        # which one that is (one worker can take all that is left)
        writing = [0]

        def one_writing() -> bool:
            writing[0] = next((p for p in workers if _writing(tmp_path / "data", p)), 0)
            return writing[0] != 0

        assert wait_for(one_writing)
        victim = writing[0]
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert json.loads(out)["summary"]["stored"] == 60
    data = tmp_path / "data"
    _one_shard_each(data, layout, urls)
    tars = [str(data / "shards" / n) for n in _shard_names(data, layout)]
    read = list(wds.WebDataset(tars, shardshuffle=False, empty_check=False))
    assert sorted(json.loads(s["json"])["url"] for s in read) == sorted(urls)
    assert _check(tmp_path)["intact"] == 60
    assert not list((data / "tmp").iterdir())


@pytest.mark.parametrize("layout", ["parquet", "webdataset"])
def test_ctrl_c_commits_each_workers_partial_shard_and_a_rerun_completes(
    fault_server: FaultServer, tmp_path: Path, layout: str
) -> None:
    proc, urls = _start(
        fault_server, tmp_path, layout, 200, "--shard-size", "1000", "--batch-size", "5"
    )
    with reaped(proc):
        workers = workers_of(proc, 2)
        assert wait_for(lambda: all(_writing(tmp_path / "data", pid) for pid in workers))
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the foreground group
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5), workers
    data = tmp_path / "data"
    assert not list((data / "tmp").iterdir())
    names = _shard_names(data, layout)
    assert len(names) == 2, names  # one partial shard per worker, committed
    samples = _samples(data, layout)
    assert len(samples) >= 2 and set(samples) == set(_index(data))
    if layout == "parquet":
        assert all(row["image"] == GIF for [row] in samples.values())
    else:  # each tar with the table its coordinator wrote, committed with it
        assert all((data / "shards" / f"{name[:-4]}.parquet").is_file() for name in names)
    serve(fault_server, 200)  # (the rerun's answers come at once)
    rerun = subprocess.run(
        cli_argv(
            "run", "--base-url", fault_server.url("/w"), "--paths-file",
            str(tmp_path / "paths.txt"), "--data-dir", str(data), "-o", "json",
            "--layout", layout, "--workers", "2", "-c", "16",
        ),
        env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)["summary"]
    assert summary["skipped"] == len(samples) and summary["stored"] == 200 - len(samples)
    _one_shard_each(data, layout, urls)


def _committed(main: Any, folder: str, written: Any) -> list[Any]:
    main.commit_from(folder, written)
    return []


def _coordinator(folder: Any, db: Any, items: list[Any], layout: Any, fsync: bool) -> Any:
    """Run "r1" of `items` planned in `db`: its tmp folder and the coordinator's store."""
    from support.sources import Urls

    from imgflow.local.safefs import subfolder

    db.create_run("r1", Urls(items), 4, 4, 1)
    db.plan("r1", iter(items))
    run_tmp = subfolder(folder.folder("tmp"), "r1")
    main = layout.open_run(folder, run_tmp, fsync=fsync)
    main.bind(db, "r1")
    return run_tmp, main


def test_shards_two_workers_wrote_get_one_number_each_from_the_committer(
    tmp_path: Path,
) -> None:
    """In process: two workers' stores write shards in folders of their own; the run's
    store (the coordinator's) numbers and commits each one: 00000, 00001, 00002, never
    one number twice, each shard's rows naming it."""
    import pyarrow.parquet as pq

    from imgflow.engine.keys import key_for
    from imgflow.engine.plan import Item
    from imgflow.engine.records import Outcome, ResultRecord
    from imgflow.local.folder import DataFolder
    from imgflow.local.layouts.parquet import parquet_layout
    from imgflow.local.layouts.shards import ShardStore
    from imgflow.local.safefs import subfolder

    urls = [f"http://127.0.0.1:9/{i}.gif" for i in range(6)]
    items = [Item(url=u, key=key_for(u)) for u in urls]
    folder = DataFolder(tmp_path / "data")
    db = folder.database()
    try:
        layout = parquet_layout(shard_size=2)
        run_tmp, main = _coordinator(folder, db, items, layout, fsync=False)
        workers: list[ShardStore] = []
        for name in ("worker-1", "worker-2"):
            store = layout.open_run(folder, subfolder(run_tmp, name), fsync=False)
            store.run_id = "r1"
            store.commit_to = functools.partial(_committed, main, name)
            store.save_to = main.save
            workers.append(store)
        for i, item in enumerate(items):  # (worker 1 has 4 samples, worker 2 has 2)
            store = workers[0 if i % 3 else 1]
            store.put(item.key, GIF, "image/gif")
            digest = hashlib.sha256(GIF).hexdigest()
            record = ResultRecord(
                url=item.url, path=item.key, outcome=Outcome.STORED, status_code=200,
                key=item.key, bytes=len(GIF), sha256=digest, content_type="image/gif",
            )  # fmt: skip
            store.record([record], [0.0], {})
        for store in workers:
            store.record([], [], {}, final=True)
        shards = tmp_path / "data" / "shards"
        names = sorted(p.name for p in shards.glob("*.parquet"))
        assert names == ["00000.parquet", "00001.parquet", "00002.parquet"]
        read = [row["url"] for n in names for row in pq.read_table(shards / n).to_pylist()]
        assert sorted(read) == sorted(urls)
        assert {url: row[0] for url, row in _index(tmp_path / "data").items()} == {
            row["url"]: n for n in names for row in pq.read_table(shards / n).to_pylist()
        }
    finally:
        db.close()
        folder.close()


def test_a_worker_leaves_its_tar_s_table_to_the_coordinator(tmp_path: Path) -> None:
    """In process: a worker's store sends its tar without a metadata table (so a worker
    process never imports pyarrow for one); the coordinator writes the table in the
    worker's folder and commits it beside the tar, its rows the tar's samples."""
    import pyarrow.parquet as pq

    from imgflow.engine.keys import key_for
    from imgflow.engine.plan import Item
    from imgflow.engine.records import Outcome, ResultRecord
    from imgflow.local.folder import DataFolder
    from imgflow.local.layouts.webdataset import webdataset_layout
    from imgflow.local.safefs import subfolder

    urls = [f"http://127.0.0.1:9/{i}.gif" for i in range(5)]
    items = [Item(url=u, key=key_for(u)) for u in urls]
    folder = DataFolder(tmp_path / "data")
    db = folder.database()
    sent: list[object] = []

    def send(written: Any) -> list[Any]:
        sent.append(written.table)  # as the worker sent it
        return _committed(main, "worker-1", written)

    try:
        layout = webdataset_layout(shard_size=3)
        run_tmp, main = _coordinator(folder, db, items, layout, fsync=True)
        worker = layout.open_run(folder, subfolder(run_tmp, "worker-1"), fsync=True)
        worker.run_id = "r1"
        worker.commit_to = send
        worker.save_to = main.save
        for i, item in enumerate(items):
            worker.put(item.key, GIF, "image/gif")
            record = ResultRecord(
                url=item.url, path=item.key, outcome=Outcome.STORED, status_code=200,
                key=item.key, bytes=len(GIF), sha256=hashlib.sha256(GIF).hexdigest(),
                content_type="image/gif",
            )  # fmt: skip
            worker.record([record], [0.0], {item.url: {"caption": f"c{i}"}})
        worker.record([], [], {}, final=True)
        assert sent == [None, None]  # two shards (3 and 2 samples), no table from the worker
        shards = tmp_path / "data" / "shards"
        assert sorted(p.name for p in shards.iterdir()) == [
            "00000.parquet", "00000.tar", "00000_stats.json",
            "00001.parquet", "00001.tar", "00001_stats.json",
        ]  # fmt: skip
        rows = [
            row
            for n in ("00000", "00001")
            for row in pq.read_table(shards / f"{n}.parquet").to_pylist()
        ]
        assert sorted(row["url"] for row in rows) == sorted(urls)
        assert {row["url"]: row["caption"] for row in rows} == {
            u: f"c{i}" for i, u in enumerate(urls)
        }
        index = _index(tmp_path / "data")
        for row in rows:
            _shard, member, sha = index[row["url"]]
            assert (member, sha) == (row["member"], row["sha256"])
        assert not list((tmp_path / "data" / "tmp" / "r1" / "worker-1").iterdir())
    finally:
        db.close()
        folder.close()
