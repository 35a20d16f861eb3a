"""A sample is never in two shards, also after a refresh or `check --repair`: the shards a
commit's samples leave are rewritten without them (imgflow/local/layouts/shard_rewrite.py),
a shard left with none is removed, and a rewrite cut short at any rename is finished by
the next run. In process, from a scripted server; shards read back with the webdataset
package and pyarrow."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import tarfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from support.cli_run import FAST_ENV, run_cli, site, start_cli
from support.faultserver import FaultServer, Ok, Status
from support.nginx import Nginx, Server
from support.sources import Urls

from imgflow.demo.images import make_gif
from imgflow.engine.keys import key_for
from imgflow.engine.plan import Item
from imgflow.engine.settings import FetchConfig
from imgflow.local.check import check
from imgflow.local.layouts import shard_rewrite
from imgflow.local.layouts.parquet import parquet_layout
from imgflow.local.layouts.shards import ShardLayout
from imgflow.local.layouts.webdataset import webdataset_layout
from imgflow.local.runner import LocalJob, LocalRunResult, run_job
from imgflow.local.settings import RunSettings

QUICK = FetchConfig(retries=0, timeout=2, total_timeout=4)
LAYOUTS = {"webdataset": webdataset_layout, "parquet": parquet_layout}


def _serve(server: FaultServer, names: list[str], changed: Collection[str] = ()) -> list[Item]:
    """`names` served with an ETag; on a refresh (`changed` given) the others answer 304
    and those in `changed` a new version."""
    items = []
    for name in names:
        if changed and name not in changed:
            server.set(f"/{name}", Status(304, headers={"ETag": '"v1"'}))
        else:
            version = "v2" if name in changed else "v1"
            body = make_gif(name + version)
            server.set(f"/{name}", Ok(body, headers={"ETag": f'"{version}"'}))
        url = f"{server.base_url}/{name}"
        items.append(Item(url=url, key=key_for(url)))
    return items


def _run(items: list[Item], data: Path, layout: ShardLayout, *, refresh: bool = False) -> Any:
    job = LocalJob(source=Urls(items), concurrency=4, batch_size=8, max_batches=2, refresh=refresh)
    result: LocalRunResult = run_job(job, RunSettings(fetch=QUICK, fsync=True, layout=layout), data)
    return result.summary


def read_shards(data: Path) -> dict[str, list[tuple[str, str]]]:
    """url -> [(shard, sha256 of the image)], every shard read whole: tars with the
    webdataset package's own reader, Parquet with pyarrow."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((data / "shards").iterdir()):
        if path.suffix == ".tar":
            import webdataset as wds

            for sample in wds.WebDataset(str(path), shardshuffle=False, empty_check=False):
                meta = json.loads(sample["json"])
                image = next(v for k, v in sample.items() if k in ("gif", "jpg", "png"))
                found.setdefault(meta["url"], []).append(
                    (path.name, hashlib.sha256(image).hexdigest())
                )
        elif path.suffix == ".parquet" and not path.with_suffix(".tar").exists():
            import pyarrow.parquet as pq

            for row in pq.read_table(path, columns=["url", "image"]).to_pylist():
                found.setdefault(row["url"], []).append(
                    (path.name, hashlib.sha256(row["image"]).hexdigest())
                )
    return found


def index_places(data: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(data / "imgflow.db") as conn:
        rows = conn.execute("SELECT url, shard, sha256 FROM images").fetchall()
    return {url: (shard, sha) for url, shard, sha in rows}


def assert_once(data: Path, urls: list[str]) -> None:
    """Every URL in exactly one shard, the one its index row names, with its bytes; every
    listed shard's stats file counts what it holds."""
    samples = read_shards(data)
    assert sorted(samples) == sorted(urls)
    assert {u: s[0] for u, s in samples.items()} == index_places(data)
    with sqlite3.connect(data / "imgflow.db") as conn:
        listed = dict(conn.execute("SELECT name, samples FROM shards").fetchall())
    for name, count in listed.items():
        stats = json.loads((data / "shards" / f"{name.split('.')[0]}_stats.json").read_text())
        assert stats["samples"] == count == sum(s[0][0] == name for s in samples.values())
    assert not [n for n in os.listdir(data / "shards") if n.startswith(".")]


@pytest.mark.parametrize("layout", ["webdataset", "parquet"])
def test_a_refresh_cuts_superseded_samples_and_removes_an_emptied_shard(
    fault_server: FaultServer, tmp_path: Path, layout: str
) -> None:
    names = [f"{i}.gif" for i in range(6)]
    items = _serve(fault_server, names)
    assert _run(items, tmp_path, LAYOUTS[layout](3)).stored == 6
    # all of one shard and one sample of the other change
    _serve(fault_server, names, names[:3] + names[4:5])
    assert _run(items, tmp_path, LAYOUTS[layout](10), refresh=True).stored == 4
    urls = [item.url for item in items]
    assert_once(tmp_path, urls)
    suffix = ".tar" if layout == "webdataset" else ".parquet"
    assert not (tmp_path / "shards" / f"00000{suffix}").exists()  # left with no sample
    assert not (tmp_path / "shards" / "00000_stats.json").exists()
    assert (
        sorted(v[0] for v in index_places(tmp_path).values())
        == [f"00001{suffix}"] * 2 + [f"00002{suffix}"] * 4
    )
    report = check(tmp_path)
    assert (report.intact, report.problems, report.would_restamp) == (6, 0, 0)


@pytest.mark.parametrize(
    (
        "layout",
        "renames",
        "copies",
    ),  # a tar's renames: table, shard, stats; Parquet's: shard, stats
    [
        ("webdataset", 0, 2),
        ("webdataset", 1, 2),
        ("webdataset", 2, 1),
        ("parquet", 0, 2),
        ("parquet", 1, 1),
    ],
)
def test_a_rewrite_cut_short_at_any_rename_is_finished_by_the_next_run(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str,
    renames: int, copies: int,
) -> None:  # fmt: skip
    names = [f"{i}.gif" for i in range(4)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, LAYOUTS[layout](2))
    real = os.rename
    done: list[str] = []

    def dies(src: str, dst: str, **kw: Any) -> None:  # a kill after `renames` renames
        if src.startswith(shard_rewrite.TEMPORARY):
            if len(done) == renames:
                raise OSError("killed")
            done.append(dst)
        real(src, dst, **kw)

    monkeypatch.setattr(os, "rename", dies)
    _serve(fault_server, names, names[1:2])
    assert _run(items, tmp_path, LAYOUTS[layout](2), refresh=True).stored == 1
    monkeypatch.setattr(os, "rename", real)
    samples = read_shards(tmp_path)  # every shard whole and readable meanwhile
    urls = [item.url for item in items]
    assert sorted(samples) == sorted(urls)
    places = index_places(tmp_path)
    assert all(places[u] in found for u, found in samples.items())  # rows point at samples
    assert len(samples[urls[1]]) == copies  # the old one cut once its shard is renamed
    assert _run(items, tmp_path, LAYOUTS[layout](2)).skipped == 4
    assert_once(tmp_path, urls)
    assert check(tmp_path).problems == 0


def test_check_repair_cuts_a_tampered_sample_and_the_next_run_fetches_it_again(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    names = [f"{i}.gif" for i in range(4)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, webdataset_layout(4))
    shard = tmp_path / "shards" / "00000.tar"
    bad = items[2].url
    with tarfile.open(shard) as tar:
        member = next(i for i in tar if i.name.endswith(".gif") and bad in _meta(tar, i))
        offset = member.offset_data
    raw = bytearray(shard.read_bytes())
    raw[offset + 10] ^= 0xFF
    shard.write_bytes(bytes(raw))
    assert check(tmp_path).mismatched == [bad]
    report = check(tmp_path, repair=True)
    assert report.mismatched == [bad]
    samples = read_shards(tmp_path)
    assert sorted(samples) == sorted(i.url for i in items if i.url != bad)  # cut from it
    assert bad not in index_places(tmp_path)
    again = check(tmp_path)
    assert (again.intact, again.problems) == (3, 0)
    summary = _run(items, tmp_path, webdataset_layout(4))
    assert (summary.stored, summary.skipped) == (1, 3)
    assert_once(tmp_path, [i.url for i in items])


def _meta(tar: tarfile.TarFile, image: tarfile.TarInfo) -> str:
    read = tar.extractfile(image.name.rsplit(".", 1)[0] + ".json")
    assert read is not None
    return str(read.read())


ATTEMPTS = 12


def test_kill_9_during_a_rewrite_then_a_rerun_has_every_url_in_one_shard(tmp_path: Path) -> None:
    """The CLI as a real process, killed with SIGKILL the moment a rewrite's temporaries
    appear (fsync on, so the rewrite lasts); every shard stays readable, every index row
    points at its sample, and the next run finishes the rewrite."""
    count = 6
    root = site(tmp_path, count, size=300_000)
    (tmp_path / "paths.txt").write_text("".join(f"{i}.gif\n" for i in range(count)))
    data, shards = tmp_path / "data", tmp_path / "data" / "shards"
    flags = ("--layout", "webdataset", "--shard-size", "3")
    web = Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")])
    with web:
        base = web.url(0, "/")
        run = ("run", "--base-url", base, "--paths-file", "paths.txt", "--data-dir", "data")
        assert run_cli(*run, *flags, cwd=tmp_path, env=FAST_ENV).returncode == 0
        caught = 0
        for attempt in range(ATTEMPTS):  # (the rewrite is short: a loaded machine can miss it)
            image = root / "1.gif"  # a sample of 00000.tar changes
            image.write_bytes(make_gif(f"changed{attempt}", 4, target_bytes=300_000))
            later = time.time() + 10 * (attempt + 1)
            os.utime(image, (later, later))
            proc = start_cli(
                *run, *flags, "--refresh", cwd=tmp_path,
                env={**FAST_ENV, "IMGFLOW_LOCAL_FSYNC": "true"},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            while proc.poll() is None:
                if any(n.startswith(shard_rewrite.TEMPORARY) for n in os.listdir(shards)):
                    proc.send_signal(signal.SIGKILL)
                    caught += 1
                    break
            proc.wait(timeout=60)
            samples = read_shards(data)  # every shard at a final name whole and readable
            assert sorted(samples) == [f"{base}{i}.gif" for i in range(count)]
            places = index_places(data)
            assert all(places[u] in found for u, found in samples.items())
            if caught:
                break
        assert caught, f"no rewrite was seen in {ATTEMPTS} refreshes"
        done = run_cli(*run, *flags, cwd=tmp_path, env=FAST_ENV)
        assert done.returncode == 0, done.stderr
    assert_once(data, [f"{base}{i}.gif" for i in range(count)])
    assert check(data).problems == 0


def test_a_sample_a_run_finds_not_intact_is_cut_from_its_old_shard(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A shard's table that disagrees with the index row (here: its sha256 changed) makes
    the run forget the row and fetch the image again; the old shard is rewritten without
    it, so the URL is in one shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"{i}.gif" for i in range(3)]
    items = _serve(fault_server, names)
    _run(items, tmp_path, webdataset_layout(10))
    table_path = tmp_path / "shards" / "00000.parquet"
    table = pq.read_table(table_path)
    digests = table.column("sha256").to_pylist()
    digests[0] = "0" * 64
    index = table.schema.get_field_index("sha256")
    pq.write_table(table.set_column(index, "sha256", pa.array(digests)), table_path)
    summary = _run(items, tmp_path, webdataset_layout(10))
    assert (summary.stored, summary.skipped) == (1, 2)
    assert_once(tmp_path, [i.url for i in items])
