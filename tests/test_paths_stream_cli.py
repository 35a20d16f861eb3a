"""A 1,000,000-line paths file, end to end (the CLI as a real process, a loopback server):

- the first requests go out while the file is still being read (it is planned while the
  run fetches, imgflow/local/runner.py's Planner): 20 images are served before the run
  has counted the file's lines. That order is the promise; how soon the first request
  comes (about 0.3 s here, printed) is the machine's, so it is not asserted;
- Ctrl-C while the file is still read records the whole job or nothing: the run stays
  unplanned (`status -o json`: one document, ``"planned": false``, no total), the
  interrupt line says done/?; `imgflow retry` reads the file again, says "unfinished" (none
  failed), and every path is covered exactly once by the two runs;
- the retry reads the whole file in flat memory (peak RSS from /proc, as for tables).

The paths repeat 200 of them (fetched once each) and end with 300 never read before the
interrupt, so the retry fetches little but reads a million lines.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, run_cli, start_cli
from support.counting import Counting, counting_server
from support.json_schemas import validate
from support.processes import peak_rss_until_exit, reaped

LINES = 1_000_000
REPEATED = [f"a/{n}.gif" for n in range(200)]
LAST = [f"b/{n}.gif" for n in range(300)]  # at the end of the file: never read by run 1
PEAK_RSS_MB = 200


def _write(file: Path) -> None:
    with file.open("w") as out:
        for n in range(LINES - len(LAST)):
            out.write(REPEATED[n % len(REPEATED)] + "\n")
        out.write("".join(f"{p}\n" for p in LAST))


def _first_run(tmp_path: Path, server: Counting) -> tuple[float, int, str]:
    """Run 1, stopped once images are fetched: (first request after, peak RSS, stderr)."""
    started = time.monotonic()
    with (tmp_path / "err").open("w") as err:
        proc = start_cli(
            "run", "--base-url", server.base_url, "--paths-file", "paths.txt",
            "--data-dir", "data", "-c", "4",
            cwd=tmp_path, env=FAST_ENV, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    with reaped(proc):
        deadline = started + 60
        while server.requests < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert server.first is not None, (tmp_path / "err").read_text()
        proc.send_signal(signal.SIGINT)
        peak = peak_rss_until_exit(proc)
    assert proc.returncode == 130, (tmp_path / "err").read_text()
    return server.first - started, peak, (tmp_path / "err").read_text()


def _urls(db: Path, run_id: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT url FROM results WHERE run_id = ? AND outcome != 'pending'", (run_id,)
        ).fetchall()
    return {url for (url,) in rows}


@pytest.mark.slow
def test_a_million_line_paths_file_starts_at_once_and_a_ctrl_c_while_reading_is_retried_whole(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "paths.txt")
    with counting_server() as server:
        first, peak_run, stderr = _first_run(tmp_path, server)
        db = tmp_path / "data" / "imgflow.db"
        with sqlite3.connect(db) as conn:
            run_id, total, unplanned = conn.execute(
                "SELECT id, total, unplanned FROM runs"
            ).fetchone()
        # 20 images served before the file was counted: the run fetched while it read.
        assert unplanned == 1 and total == 0, "the interrupt came after the file was read"
        assert f"run {run_id} interrupted at " in stderr and "/? images" in stderr
        assert f"imgflow retry {run_id}" in stderr

        status = run_cli("status", run_id, "--data-dir", "data", "-o", "json", cwd=tmp_path)
        assert status.returncode == 1, status.stderr  # (the run did not succeed)
        doc = validate(json.loads(status.stdout), "run")  # one document
        assert doc["state"] == "interrupted" and doc["planned"] is False
        assert doc["summary"]["total"] is None
        failed = [r for r in doc["results"] if r["outcome"] == "failed"]
        listed = run_cli("status", "--data-dir", "data", "-o", "json", cwd=tmp_path)
        (row,) = validate(json.loads(listed.stdout), "status-list")["runs"]
        assert row["planned"] is False and row["summary"]["total"] is None

        with (tmp_path / "out").open("w") as out, (tmp_path / "err2").open("w") as err:
            proc = start_cli(
                "retry", run_id, "--data-dir", "data", "-o", "json",
                cwd=tmp_path, env=FAST_ENV, stdout=out, stderr=err,
            )  # fmt: skip
            peak_retry = peak_rss_until_exit(proc)
        said = (tmp_path / "err2").read_text()
        assert proc.returncode == 0, said
        requested = dict(server.paths)
    # The paths never read are unfinished, never "failed" (only a real failure is).
    assert "unfinished images never read (reading paths.txt again)" in said, said
    assert failed or "failed" not in said, said
    retry = validate(json.loads((tmp_path / "out").read_text()), "run")
    assert retry["summary"]["failed"] == 0, (failed, retry["summary"])
    # Every path is covered exactly once: by the run or by its retry, never by both.
    before, after = _urls(db, run_id), _urls(db, retry["run"])
    every = {f"{server.base_url}/{p}" for p in REPEATED + LAST}
    assert before | after == every
    assert all(requested[f"/{p}"] == 1 for p in LAST)  # never read before: fetched once
    for name, peak in (("run", peak_run), ("retry", peak_retry)):
        assert peak / 2**20 < PEAK_RSS_MB, f"{name}: peak RSS {peak / 2**20:.0f} MB"
    both = sorted(before & after)
    assert not both, f"recorded by the run and by its retry: {both[:3]} ({len(both)} in all)"
    print(f"first request after {first:.2f} s; peak RSS {peak_run / 2**20:.0f} MB (run),"
          f" {peak_retry / 2**20:.0f} MB (retry, the whole file)")  # fmt: skip
