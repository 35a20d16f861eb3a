"""A full disk at the end of a run: the summary, the JSON document and the notify command
come out whatever the disk; failures.json is written when space allows, else the run says
(in one line) where it could not. On a real tmpfs of 2 MB, and one of 200 inodes."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import run_cli, site
from support.mounts import tmpfs
from support.nginx import Nginx, Server


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tmpfs mounted with the options `request.param`; skipped when not root."""
    with tmpfs(tmp_path / "disk", request.param) as disk:
        yield disk


def _run(
    tmp_path: Path, url: str, data: Path, paths: list[str]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "paths.txt").write_text("".join(f"{p}\n" for p in paths))
    notify = f"sh -c 'cat > {tmp_path / 'notified.json'}'"
    return run_cli(
        "run", "--base-url", url, "--paths-file", "paths.txt", "-o", "json", "-c", "4",
        "--data-dir", str(data), cwd=tmp_path, env={"IMGFLOW_NOTIFY_COMMAND": notify},
        timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _fill(disk: Path) -> None:
    """Take every block left on `disk`."""
    with (disk / "ballast").open("wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _assert_reported(tmp_path: Path, done: subprocess.CompletedProcess[str], data: Path) -> None:
    assert done.returncode == 1, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    failed = doc["summary"]["failed"]
    assert failed > 0, doc["summary"]
    assert doc["state"] == "failed", doc["state"]
    status = run_cli(
        "status", doc["run"], "--data-dir", str(data), "-o", "json", cwd=tmp_path, timeout=60
    )
    assert json.loads(status.stdout)["state"] == "failed", status.stdout
    failures = data / "runs" / doc["run"] / "failures.json"
    if failures.exists():  # space allowed it
        assert len(json.loads(failures.read_text())) == failed
    else:
        said = [line for line in done.stderr.splitlines() if "failures file" in line]
        assert len(said) == 1 and "could not write" in said[0], done.stderr[-2000:]
    assert len(json.loads((tmp_path / "notified.json").read_text())) == failed


@pytest.mark.parametrize("small_disk", ["size=2m"], indirect=True)
def test_a_disk_without_a_block_left_at_the_end_still_reports(
    tmp_path: Path, small_disk: Path
) -> None:
    root = site(tmp_path, 1)
    data = small_disk / "data"
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        url = web.url(0, "/")
        # A reader holds the index open through the first run, so the index keeps its
        # write-ahead log's room (checkpointed): the second run's records fit in it, and
        # failures.json finds no block left.
        assert _run(tmp_path, url, data, ["0.gif"]).returncode == 0
        keep = sqlite3.connect(data / "imgflow.db")
        try:
            keep.execute("SELECT count(*) FROM sqlite_master").fetchone()
            warm = [f"warm-{i:04}-{'x' * 80}.gif" for i in range(600)]
            first = _run(tmp_path, url, data, warm)
            assert first.returncode == 1, first.stderr[-2000:]
            keep.execute("PRAGMA wal_checkpoint(PASSIVE)")
            _fill(small_disk)
            done = _run(tmp_path, url, data, [f"gone-{i:04}-{'x' * 80}.gif" for i in range(300)])
        finally:
            keep.close()
    _assert_reported(tmp_path, done, data)
    assert not (data / "runs" / json.loads(done.stdout)["run"] / "failures.json").exists()


@pytest.mark.parametrize("small_disk", ["nr_inodes=200"], indirect=True)
def test_a_disk_without_an_inode_left_at_the_end_still_reports(
    tmp_path: Path, small_disk: Path
) -> None:
    count = 300
    root = site(tmp_path, count)
    data = small_disk / "data"
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        done = _run(tmp_path, web.url(0, "/"), data, [f"{i}.gif" for i in range(count)])
    _assert_reported(tmp_path, done, data)
