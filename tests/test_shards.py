"""`imgflow run --layout webdataset|parquet` end to end, from a real nginx: shards read back
with tarfile, the webdataset package and pyarrow; kill -9 at random moments then a rerun
(every shard at a final name readable, every URL in exactly one shard); Ctrl-C commits the
partial shard; check finds a tampered shard; retry and refresh on shards; bad input."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli_run import FAST_ENV, run_cli, site, start_cli
from support.nginx import Nginx, Server

from imgflow.demo.images import make_gif

COUNT = 25


def _paths(tmp_path: Path, paths: list[str]) -> None:
    (tmp_path / "paths.txt").write_text("".join(f"{p}\n" for p in paths))


def _refused_run(
    tmp_path: Path, layout: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A run of one path to a closed port with ``--layout layout``, for the refusals."""
    _paths(tmp_path, ["a.gif"])
    return run_cli(
        "run", "--base-url", "http://127.0.0.1:9/", "--paths-file", "paths.txt",
        "--data-dir", "data", "--layout", layout, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip


def _run(tmp_path: Path, url: str, *flags: str, env: dict[str, str] | None = None) -> Any:
    done = run_cli(
        "run", "--base-url", url, "--paths-file", "paths.txt", "-o", "json",
        "--data-dir", "data", *flags,
        cwd=tmp_path, env={**FAST_ENV, **(env or {})}, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    doc["exit"] = done.returncode
    return doc


def _tar_samples(data: Path) -> dict[str, list[dict[str, Any]]]:
    """Every shard's samples (the .json members), read with tarfile: url -> [meta...]."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((data / "shards").glob("*.tar")):
        with tarfile.open(path) as tar:
            names = tar.getnames()
            for info in tar.getmembers():
                if not info.name.endswith(".json"):
                    continue
                read = tar.extractfile(info)
                assert read is not None
                meta = json.loads(read.read())
                meta["shard"] = path.name
                stem = info.name[: -len(".json")]
                image = [
                    n for n in names if n.startswith(stem + ".") and n[-4:] not in ("json", ".txt")
                ]
                assert len(image) == 1, names
                member = tar.extractfile(image[0])
                assert member is not None
                assert hashlib.sha256(member.read()).hexdigest() == meta["sha256"]
                meta["member"] = image[0]
                found.setdefault(meta["url"], []).append(meta)
    return found


def _parquet_samples(data: Path) -> dict[str, list[dict[str, Any]]]:
    """Every Parquet shard's rows, read with pyarrow: url -> [row...]."""
    import pyarrow.parquet as pq

    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((data / "shards").glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            assert hashlib.sha256(row["image"]).hexdigest() == row["sha256"]
            row["shard"] = path.name
            found.setdefault(row["url"], []).append(row)
    return found


def _samples(data: Path, layout: str) -> dict[str, list[dict[str, Any]]]:
    return _tar_samples(data) if layout == "webdataset" else _parquet_samples(data)


def _index(data: Path) -> dict[str, tuple[str, str, str]]:
    with sqlite3.connect(data / "imgflow.db") as conn:
        rows = conn.execute("SELECT url, shard, member, sha256 FROM images").fetchall()
    return {url: (shard, member, sha) for url, shard, member, sha in rows}


def _check(tmp_path: Path) -> dict[str, Any]:
    done = run_cli("check", "--data-dir", "data", "-o", "json", cwd=tmp_path, timeout=120)
    doc: dict[str, Any] = json.loads(done.stdout)
    doc["exit"] = done.returncode
    return doc


def _image_requests(web: Nginx) -> int:
    """The requests the server saw for images (robots.txt, read once a run, left out)."""
    return sum("/robots.txt" not in line for line in web.access_log())


def _site_nginx(tmp_path: Path, root: Path, extra: str = "") -> Nginx:
    return Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; {extra} }}")])


def test_webdataset_shards_read_back_with_tarfile_and_webdataset(tmp_path: Path) -> None:
    import webdataset as wds

    root = site(tmp_path, COUNT)
    paths = [f"{i}.gif" for i in range(COUNT)] + ["missing.gif"]
    _paths(tmp_path, paths)
    data = tmp_path / "data"
    with _site_nginx(tmp_path, root) as web:
        doc = _run(tmp_path, web.url(0, "/"), "--layout", "webdataset", "--shard-size", "10")
        assert doc["summary"]["stored"] == COUNT and doc["summary"]["failed"] == 1
        names = sorted(os.listdir(data / "shards"))
        assert names == [
            f"0000{n}{suffix}" for n in range(3) for suffix in (".parquet", ".tar", "_stats.json")
        ]
        samples = _tar_samples(data)
        assert sorted(samples) == sorted(web.url(0, f"/{p}") for p in paths[:-1])
        index = _index(data)
        for url, [meta] in samples.items():
            assert index[url] == (meta["shard"], meta["member"], meta["sha256"])
            assert meta["content_type"] == "image/gif" and meta["etag"] and meta["last_modified"]
            name = url.rsplit("/", 1)[1]
            assert meta["bytes"] == (root / name).stat().st_size
        # the webdataset package's own reader
        urls = [str(p) for p in sorted((data / "shards").glob("*.tar"))]
        read = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
        assert len(read) == COUNT
        for sample in read:
            meta = json.loads(sample["json"])
            assert hashlib.sha256(sample["gif"]).hexdigest() == meta["sha256"]
            assert sample["__key__"] == meta["sample_key"]
        stats = json.loads((data / "shards" / "00002_stats.json").read_text())
        assert stats["samples"] == 5 and stats["counts"]["failed"] == 1
        import pyarrow.parquet as pq

        table = pq.read_table(data / "shards" / "00000.parquet").to_pylist()
        assert len(table) == 10 and {row["url"] for row in table} <= set(samples)
        assert _check(tmp_path)["intact"] == COUNT

        before = _image_requests(web)
        again = _run(tmp_path, web.url(0, "/"), "--layout", "webdataset", "--shard-size", "10")
        assert again["summary"]["skipped"] == COUNT
        assert _image_requests(web) - before == 1  # only missing.gif again
        assert len(list((data / "shards").glob("*.tar"))) == 3


def test_parquet_shards_read_back_with_pyarrow(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    root = site(tmp_path, 12)
    _paths(tmp_path, [f"{i}.gif" for i in range(12)])
    data = tmp_path / "data"
    with _site_nginx(tmp_path, root) as web:
        doc = _run(tmp_path, web.url(0, "/"), "--layout", "parquet", "--shard-size", "5")
        assert doc["summary"]["stored"] == 12
    files = sorted((data / "shards").glob("*.parquet"))
    assert [p.name for p in files] == ["00000.parquet", "00001.parquet", "00002.parquet"]
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    assert len(rows) == 12
    index = _index(data)
    for row in rows:
        assert row["image"] == (root / row["url"].rsplit("/", 1)[1]).read_bytes()
        assert index[row["url"]][:2] == (row_shard(files, row), row["sample_key"])
    assert (data / "shards" / "00000_stats.json").exists()
    assert _check(tmp_path)["intact"] == 12


def row_shard(files: list[Path], row: dict[str, Any]) -> str:
    import pyarrow.parquet as pq

    for path in files:
        if row["url"] in pq.read_table(path, columns=["url"]).column("url").to_pylist():
            return path.name
    raise AssertionError(row["url"])


def _slow(tmp_path: Path, count: int) -> tuple[Path, str]:
    root = site(tmp_path, count, size=30000)
    _paths(tmp_path, [f"{i}.gif" for i in range(count)])
    # about a second an image (nginx sends 4 KB at a time, so the limit holds from the start)
    return root, "sendfile off; output_buffers 1 4k; limit_rate 30k;"


def _start(tmp_path: Path, url: str, *flags: str) -> subprocess.Popen[Any]:
    return start_cli(
        "run", "--base-url", url, "--paths-file", "paths.txt", "--data-dir", "data",
        "-c", "4", "--max-batches", "2", "--batch-size", "4", *flags,
        cwd=tmp_path, env=FAST_ENV, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for_requests(web: Nginx, count: int) -> None:
    """Until nginx has answered `count` requests in all."""
    deadline = time.monotonic() + 60
    while _image_requests(web) < count and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("layout", ["webdataset", "parquet"])
def test_kill_9_at_random_moments_then_a_rerun_has_every_url_in_exactly_one_shard(
    tmp_path: Path, layout: str
) -> None:
    count = 40
    root, slow = _slow(tmp_path, count)
    data = tmp_path / "data"
    rng = random.Random(os.getpid())
    killed_at: list[int] = []
    with _site_nginx(tmp_path, root, slow) as web:
        url = web.url(0, "/")
        for _ in range(3):
            seen = _image_requests(web)
            proc = _start(tmp_path, url, "--layout", layout, "--shard-size", "3")
            _wait_for_requests(web, seen + rng.randint(2, 8))
            time.sleep(rng.uniform(0, 0.3))
            proc.kill()
            proc.wait(timeout=30)
            assert proc.stderr is not None
            proc.stderr.close()
            samples = _samples(data, layout)  # every final shard whole and readable
            assert all(len(found) == 1 for found in samples.values())
            committed = dict(_index(data))
            # a kill between a shard's rename and its commit leaves it unlisted (the next
            # run removes it); the listed ones hold exactly the committed rows
            with sqlite3.connect(data / "imgflow.db") as conn:
                listed = {row[0] for row in conn.execute("SELECT name FROM shards")}
            samples = {u: m for u, m in samples.items() if m[0]["shard"] in listed}
            assert {u: m[0]["shard"] for u, m in samples.items()} == {
                u: committed[u][0] for u in samples
            }
            killed_at.append(len(samples))
        before = _image_requests(web)
        done = _run(tmp_path, url, "--layout", layout, "--shard-size", "3")
        assert done["exit"] == 0
        fetched = _image_requests(web) - before
        assert fetched == count - len(samples)  # exactly the uncommitted samples
        assert fetched > 0, killed_at  # the kills came before the end
    final = _samples(data, layout)
    assert sorted(final) == sorted(f"{url}{i}.gif" for i in range(count))
    assert all(len(found) == 1 for found in final.values())
    assert os.listdir(data / "tmp") == []
    report = _check(tmp_path)
    assert (report["intact"], report["missing"], report["foreign"]) == (count, [], [])


def test_ctrl_c_commits_the_partial_shard_and_the_rerun_fetches_only_the_rest(
    tmp_path: Path,
) -> None:
    count = 30
    root, slow = _slow(tmp_path, count)
    data = tmp_path / "data"
    with _site_nginx(tmp_path, root, slow) as web:
        url = web.url(0, "/")
        proc = _start(tmp_path, url, "--layout", "webdataset")
        _wait_for_requests(web, 6)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        assert "interrupted" in stderr, stderr
        assert sorted(p.name for p in (data / "shards").glob("*.tar")) == ["00000.tar"]
        samples = _tar_samples(data)
        assert len(samples) >= 6
        assert set(_index(data)) == set(samples)
        before = _image_requests(web)
        done = _run(tmp_path, url, "--layout", "webdataset")
        assert done["exit"] == 0 and done["summary"]["skipped"] == len(samples)
        assert _image_requests(web) - before == count - len(samples)
    final = _tar_samples(data)
    assert len(final) == count and all(len(v) == 1 for v in final.values())


def test_check_reports_a_tampered_shard(tmp_path: Path) -> None:
    root = site(tmp_path, 6)
    _paths(tmp_path, [f"{i}.gif" for i in range(6)])
    data = tmp_path / "data"
    with _site_nginx(tmp_path, root) as web:
        _run(tmp_path, web.url(0, "/"), "--layout", "webdataset", "--shard-size", "3")
        url = web.url(0, "/4.gif")
    shard, member, _ = _index(data)[url]
    path = data / "shards" / shard
    with tarfile.open(path) as tar:
        offset = tar.getmember(member).offset_data
    raw = bytearray(path.read_bytes())
    raw[offset + 20] ^= 0xFF
    path.write_bytes(bytes(raw))
    report = _check(tmp_path)
    assert report["exit"] == 1
    assert report["mismatched"] == [url] and report["intact"] == 5
    (data / "shards" / "stray.bin").write_bytes(b"x")
    assert "shards/stray.bin" in _check(tmp_path)["foreign"]


def test_retry_and_refresh_on_shards(tmp_path: Path) -> None:
    root = site(tmp_path, 4)
    paths = [f"{i}.gif" for i in range(4)] + ["late.gif"]
    _paths(tmp_path, paths)
    data = tmp_path / "data"
    flags = ("--layout", "webdataset", "--shard-size", "10")
    with _site_nginx(tmp_path, root) as web:
        first = _run(tmp_path, web.url(0, "/"), *flags)
        assert first["summary"]["failed"] == 1
        (root / "late.gif").write_bytes(make_gif("late"))
        done = run_cli(
            "retry", first["run"], "--data-dir", "data", "-o", "json", *flags,
            cwd=tmp_path, env=FAST_ENV, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        index = _index(data)
        assert index[web.url(0, "/late.gif")][0] == "00001.tar"

        new = make_gif("changed", 9, target_bytes=5000)
        (root / "1.gif").write_bytes(new)
        later = os.stat(root / "1.gif").st_mtime + 5
        os.utime(root / "1.gif", (later, later))
        refreshed = _run(tmp_path, web.url(0, "/"), *flags, "--refresh")
        assert refreshed["summary"]["updated"] == 1 and refreshed["summary"]["unchanged"] == 4
        one = web.url(0, "/1.gif")
        shard, _, digest = _index(data)[one]
        assert shard == "00002.tar" and digest == hashlib.sha256(new).hexdigest()
    samples = _tar_samples(data)
    assert [m["shard"] for m in samples[one]] == ["00002.tar"]  # cut from 00000.tar
    assert all(len(v) == 1 for v in samples.values())
    report = _check(tmp_path)
    assert (report["intact"], report["exit"]) == (5, 0)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--shard-size", "0"), "output.shard_size: must be at least 1"),
        (("--layout", "tar"), "output.layout: expected one of files, webdataset, parquet"),
    ],
)
def test_bad_layout_flags_are_one_line_and_exit_2(
    tmp_path: Path, flags: tuple[str, ...], says: str
) -> None:
    _paths(tmp_path, ["a.gif"])
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9/", "--paths-file", "paths.txt",
        "--data-dir", "data", *flags, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and says in done.stderr, done.stderr
    assert not (tmp_path / "data").exists()


def test_parquet_without_pyarrow_is_one_line_and_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "nopyarrow" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no pyarrow here')\n")
    done = _refused_run(tmp_path, "parquet", env={"PYTHONPATH": str(fake.parent)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "pyarrow" in done.stderr, done.stderr
    assert not (tmp_path / "data" / "imgflow.db").exists()


def test_a_linked_shards_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data / "shards").symlink_to(elsewhere)
    done = _refused_run(tmp_path, "webdataset")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "symbolic link" in done.stderr
    assert sorted(os.listdir(data)) == ["shards"] and os.listdir(elsewhere) == []


def test_a_shards_file_in_place_of_the_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "shards").write_text("not a folder")
    done = _refused_run(tmp_path, "parquet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "shards" in done.stderr, done.stderr
    assert sorted(os.listdir(data)) == ["shards"]


def test_without_pyarrow_a_tar_has_a_jsonl_table_and_reruns_skip(tmp_path: Path) -> None:
    fake = tmp_path / "nopyarrow" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no pyarrow here')\n")
    no_pyarrow = {"PYTHONPATH": str(fake.parent)}
    root = site(tmp_path, 5)
    _paths(tmp_path, [f"{i}.gif" for i in range(5)])
    data = tmp_path / "data"
    with _site_nginx(tmp_path, root) as web:
        first = _run(tmp_path, web.url(0, "/"), "--layout", "webdataset", env=no_pyarrow)
        assert first["summary"]["stored"] == 5
        assert sorted(os.listdir(data / "shards")) == [
            "00000.jsonl",
            "00000.tar",
            "00000_stats.json",
        ]
        rows = [json.loads(line) for line in (data / "shards" / "00000.jsonl").open()]
        assert sorted(row["url"] for row in rows) == sorted(_tar_samples(data))
        before = _image_requests(web)
        again = _run(tmp_path, web.url(0, "/"), "--layout", "webdataset", env=no_pyarrow)
        assert again["summary"]["skipped"] == 5 and _image_requests(web) == before
