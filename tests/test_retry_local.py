"""`imgflow retry <run-id>` and `imgflow status --limit` on the local backend, as a process."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.flag_site import flag_site, publish
from test_cli import imgflow, write_paths

from imgflow.demo.server import StaticServer
from imgflow.local.index import Database

PRESENT = ["ad/ad.gif", "ae/ae.gif", "af/af.gif"]
LATE = ["ag/ag.gif", "al/al.gif"]  # missing at first, served before the retry


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, StaticServer]]:
    with flag_site(tmp_path / "site", PRESENT) as server:
        yield tmp_path / "site", server


def test_retry_runs_only_the_failed_paths_and_links_the_parent(
    site: tuple[Path, StaticServer], tmp_path: Path
) -> None:
    root, server = site
    paths = write_paths(tmp_path, PRESENT[:2] + LATE[:1] + PRESENT[2:] + LATE[1:])
    first = imgflow(
        "run", "--base-url", server.base_url, "--paths-file", str(paths), "-o", "json",
        cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    parent = json.loads(first.stdout)["run"]
    for path in LATE:
        publish(root, path)
    # One of them is stored by another run meanwhile: the retry skips it.
    (tmp_path / "one.txt").write_text(LATE[1] + "\n")
    between = imgflow(
        "run",
        "--base-url",
        server.base_url,
        "--paths-file",
        str(tmp_path / "one.txt"),
        cwd=tmp_path,
    )
    assert between.returncode == 0, between.stderr

    done = imgflow("retry", parent, "-o", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"retrying 2 failed images of run {parent}" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["run"] != parent and doc["state"] == "succeeded"
    assert doc["summary"] == {"total": 2, "stored": 1, "skipped": 1, "failed": 0}
    by_url = {r["url"].removeprefix(server.base_url + "/"): r["outcome"] for r in doc["results"]}
    assert by_url == {LATE[0]: "stored", LATE[1]: "skipped"}

    listed = imgflow("status", "-o", "json", cwd=tmp_path)
    runs = json.loads(listed.stdout)["runs"]
    assert (runs[0]["run"], runs[0]["parent"]) == (doc["run"], parent)
    assert {r["run"]: r["parent"] for r in runs}[parent] is None
    table = imgflow("status", cwd=tmp_path)
    assert "retry of" in table.stdout and parent in table.stdout

    limited = imgflow("status", "--limit", "1", "-o", "json", cwd=tmp_path)
    assert [r["run"] for r in json.loads(limited.stdout)["runs"]] == [doc["run"]]

    again = imgflow("retry", doc["run"], cwd=tmp_path)
    assert again.returncode == 0
    assert f"nothing to retry: no image failed in run {doc['run']}" in again.stderr
    conn = sqlite3.connect(tmp_path / "imgflow-data" / "imgflow.db")
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3  # no empty run made


def test_retry_of_an_unknown_run_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "imgflow-data").mkdir()
    Database(tmp_path / "imgflow-data" / "imgflow.db").close()  # an index with no runs
    done = imgflow("retry", "nope", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"imgflow: error: run 'nope' not found in {tmp_path / 'imgflow-data' / 'imgflow.db'}"
    ]
    bad = imgflow("status", "--limit", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--limit" in bad.stderr and "Traceback" not in bad.stderr
