"""Every command that opens a data folder refuses a linked `runs/` or `imgflow.db` (links
leading out of the folder), as `run` and `check` do, and writes nothing through them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli_run import run_cli, site
from support.nginx import Nginx, Server

COMMANDS = {
    "run": ["run", "--base-url", "@URL@", "--paths-file", "paths.txt"],
    "retry": ["retry", "@RUN@"],
    "status": ["status"],
    "status-run": ["status", "@RUN@"],
    "report": ["report", "--no-thumbnails"],
    "report-run": ["report", "@RUN@", "--no-thumbnails"],
    "check": ["check"],
    "export": ["export"],
    "serve": ["serve", "--port", "0", "--no-auth"],
}


def _cli(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *args, "--data-dir", str(tmp_path / "data"),
        cwd=tmp_path, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("linked", ["runs", "imgflow.db"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_linked_runs_folder_or_index_is_refused(
    tmp_path: Path, command: str, linked: str
) -> None:
    root = site(tmp_path, 1)
    (tmp_path / "paths.txt").write_text("0.gif\nmissing.gif\n")
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        url = web.url(0, "/")
        first = _cli(tmp_path, "run", "--base-url", url, "--paths-file", "paths.txt", "-o", "json")
        assert first.returncode == 1, first.stderr
        run_id = json.loads(first.stdout)["run"]
        outside = tmp_path / "outside"
        outside.mkdir()
        shutil.move(tmp_path / "data" / linked, outside / linked)
        (tmp_path / "data" / linked).symlink_to(outside / linked)
        before = sorted(p.name for p in outside.rglob("*"))
        args = [a.replace("@URL@", url).replace("@RUN@", run_id) for a in COMMANDS[command]]
        done = _cli(tmp_path, *args, timeout=30)
    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "symbolic link" in lines[0], done.stderr
    assert sorted(p.name for p in outside.rglob("*")) == before
