"""A disk that fills up while shards are written (a real 3 MB tmpfs): the images that did
not fit fail as "No space left", every shard at a final name is whole and indexed, no
temporary file is left, and once there is room the rerun fetches exactly what failed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import run_cli, site
from support.mounts import tmpfs
from support.nginx import Nginx, Server
from support.shard_files import shard_urls

COUNT = 40


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "size=3m") as disk:
        yield disk


def _run(tmp_path: Path, url: str, data: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "run", "--base-url", url, "--paths-file", "paths.txt", "-o", "json", "-c", "4",
        "--data-dir", str(data), "--layout", "webdataset", "--shard-size", "5",
        cwd=tmp_path, env={"IMGFLOW_LOCAL_FSYNC": "false"}, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_full_disk_during_shard_writes(tmp_path: Path, small_disk: Path) -> None:
    root = site(tmp_path, COUNT, size=100_000)
    (tmp_path / "paths.txt").write_text("".join(f"{i}.gif\n" for i in range(COUNT)))
    data = small_disk / "data"
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        done = _run(tmp_path, web.url(0, "/"), data)
        assert done.returncode == 1, done.stderr[-2000:]
        doc = json.loads(done.stdout)
        failed = [r for r in doc["results"] if r["outcome"] == "failed"]
        assert failed and all(r["failureKind"] == "no-space" for r in failed), failed[:3]
        stored = {r["url"] for r in doc["results"] if r["outcome"] == "stored"}
        assert stored
        assert set(shard_urls(data / "shards")) == stored
        assert os.listdir(data / "tmp") == []
        check = run_cli("check", "--data-dir", str(data), "-o", "json", cwd=tmp_path)
        report = json.loads(check.stdout)
        assert (report["intact"], report["missing"], report["mismatched"]) == (len(stored), [], [])

        # room again (the folder copied to a bigger disk): the rerun fetches what failed
        roomy = tmp_path / "roomy"
        subprocess.run(["cp", "-a", str(data), str(roomy)], check=True)
        before = sum("/robots.txt" not in line for line in web.access_log())
        again = _run(tmp_path, web.url(0, "/"), roomy)
        assert again.returncode == 0, again.stderr[-2000:]
        assert sum("/robots.txt" not in line for line in web.access_log()) - before == len(failed)
        assert json.loads(again.stdout)["summary"]["skipped"] == len(stored)
