"""A data folder copied with `cp -r` (every mtime changed, no byte): a rerun fetches
nothing again (the sizes and sha256 match: the rows are restamped), and a plain `check`
says what it would restamp without changing anything."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.cli_run import run_cli, site
from support.nginx import Nginx, Server

COUNT = 5


def _cli(tmp_path: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *args, "--data-dir", str(data), cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL
    )


def _copied(tmp_path: Path, web: Nginx) -> Path:
    """A data folder with COUNT images, copied with cp -r (new mtimes)."""
    (tmp_path / "paths.txt").write_text("".join(f"{i}.gif\n" for i in range(COUNT)))
    first = _cli(tmp_path, tmp_path / "data", "run", "--base-url", web.url(0, "/"),
                 "--paths-file", "paths.txt", "-o", "json")  # fmt: skip
    assert first.returncode == 0, first.stderr
    images = tmp_path / "data" / "images"
    for name in os.listdir(images):  # however quick the copy, the times differ
        os.utime(images / name, ns=(1_000_000_000, 1_000_000_000))
    subprocess.run(["cp", "-r", str(tmp_path / "data"), str(tmp_path / "copy")], check=True)
    return tmp_path / "copy"


def test_a_rerun_in_a_copied_folder_fetches_nothing_again(tmp_path: Path) -> None:
    root = site(tmp_path, COUNT)
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        copy = _copied(tmp_path, web)
        requests = len(web.access_log())
        again = _cli(tmp_path, copy, "run", "--base-url", web.url(0, "/"),
                     "--paths-file", "paths.txt", "-o", "json")  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["summary"]["skipped"] == COUNT
        assert web.access_log()[requests:] == []
    checked = _cli(tmp_path, copy, "check", "-o", "json")
    assert json.loads(checked.stdout)["intact"] == COUNT
    assert json.loads(checked.stdout)["wouldRestamp"] == 0  # the rerun restamped them


def test_plain_check_says_what_it_would_restamp_and_changes_nothing(tmp_path: Path) -> None:
    root = site(tmp_path, COUNT)
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        copy = _copied(tmp_path, web)
    for _ in range(2):  # the first changed nothing: the second sees the same
        plain = _cli(tmp_path, copy, "check")
        assert plain.returncode == 0, plain.stderr
        assert f"{COUNT} would be restamped" in " ".join(plain.stdout.split()), plain.stdout
    doc = json.loads(_cli(tmp_path, copy, "check", "-o", "json").stdout)
    assert (doc["restamped"], doc["wouldRestamp"]) == (0, COUNT)
    repaired = _cli(tmp_path, copy, "check", "--repair", "-o", "json")
    assert json.loads(repaired.stdout)["restamped"] == COUNT
    assert json.loads(_cli(tmp_path, copy, "check", "-o", "json").stdout)["wouldRestamp"] == 0
