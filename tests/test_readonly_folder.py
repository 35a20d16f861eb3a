"""Read-only commands work on a data folder on read-only media (a real read-only bind
mount): check without --repair, status, report written elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import run_cli, site
from support.nginx import Nginx, Server


def _cli(tmp_path: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *args, "--data-dir", str(data), cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """(the data folder, its read-only view, the id of its run)."""
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    data, view = tmp_path / "data", tmp_path / "ro"
    root = site(tmp_path, 2)
    (tmp_path / "paths.txt").write_text("0.gif\n1.gif\n")
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        first = _cli(tmp_path, data, "run", "--base-url", web.url(0, "/"), "--paths-file",
                     "paths.txt", "-o", "json")  # fmt: skip
    assert first.returncode == 0, first.stderr
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(data), str(view)]).returncode != 0:
        pytest.skip("cannot bind mount")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield data, view, json.loads(first.stdout)["run"]
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_check_verifies_a_read_only_folder(
    tmp_path: Path, read_only: tuple[Path, Path, str]
) -> None:
    _, view, _ = read_only
    done = _cli(tmp_path, view, "check", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["intact"] == 2


def test_status_reads_a_read_only_folder(tmp_path: Path, read_only: tuple[Path, Path, str]) -> None:
    _, view, run_id = read_only
    listed = _cli(tmp_path, view, "status", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    one = _cli(tmp_path, view, "status", run_id, "-o", "json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["summary"]["stored"] == 2


def test_report_of_a_read_only_folder_is_written_elsewhere(
    tmp_path: Path, read_only: tuple[Path, Path, str]
) -> None:
    _, view, run_id = read_only
    page = tmp_path / "page.html"
    done = _cli(tmp_path, view, "report", run_id, "--no-thumbnails", "-f", str(page))
    assert done.returncode == 0, done.stderr
    assert page.is_file()


def test_check_repair_on_a_read_only_folder_is_one_line(
    tmp_path: Path, read_only: tuple[Path, Path, str]
) -> None:
    _, view, _ = read_only
    done = _cli(tmp_path, view, "check", "--repair")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0], done.stderr
