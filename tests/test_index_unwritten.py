"""An index file without its tables: what a first run stopped by a signal before it wrote its
schema leaves (sqlite3 creates the file, in WAL mode, before the tables). Every reader takes
it as a folder with no runs yet, as when the file is missing, never as an SQLite error; the
next run writes the tables and works (the CLI as a real process)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from support.cli_run import run_cli


def _unwritten(data: Path) -> None:
    data.mkdir()
    conn = sqlite3.connect(data / "imgflow.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def test_an_index_a_stopped_first_run_left_without_tables_reads_as_no_runs_yet(
    tmp_path: Path,
) -> None:
    _unwritten(tmp_path / "data")
    folder = ("--data-dir", "data")
    check = run_cli("check", *folder, "-o", "json", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["checked"] == 0
    for command in (("status", "last"), ("export", "--format", "csv"), ("report",)):
        done = run_cli(*command, *folder, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "no runs yet in" in done.stderr and "no such table" not in done.stderr, command
