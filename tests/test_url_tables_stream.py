"""A 1,000,000-row URL table is read in flat memory, and the first request goes out within
2 s of the start: the table is planned while the run fetches (imgflow/local/runner.py).

The CLI runs as a real process; a loopback server notes when the first request came; the
run is stopped once the whole table is planned, and the process's peak RSS is read from
/proc while it runs (VmHWM: not wait4's ru_maxrss, which starts from the
forking test worker's own peak).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, start_cli
from support.counting import Counting, counting_server
from support.processes import peak_rss_until_exit, reaped

ROWS = 1_000_000
FIRST_REQUEST_SECONDS = 2.0
PEAK_RSS_MB = 200


@pytest.fixture
def counting() -> Iterator[Counting]:
    with counting_server() as server:
        yield server


def _planned(db: Path) -> int:
    """The run's planned total (0 until the whole table is planned)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT total FROM runs").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_a_million_row_table_streams_in_flat_memory(tmp_path: Path, counting: Counting) -> None:
    port = counting.server_address[1]
    table = tmp_path / "urls.csv"
    with table.open("w") as out:
        out.write("url,caption,n\n")
        for n in range(ROWS):
            out.write(f"http://127.0.0.1:{port}/img/{n % 1000}/{n}.gif,image {n},{n}\n")
    data = tmp_path / "data"
    started = time.monotonic()
    with (tmp_path / "err").open("w") as err:
        proc = start_cli(
            "run", "--urls-file", str(table), "--data-dir", str(data), "-c", "4",
            cwd=tmp_path, env=FAST_ENV, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    with reaped(proc):
        deadline = started + 600
        # No need to wait past the promise: a first request later than 2 s fails anyway.
        first_by = started + FIRST_REQUEST_SECONDS
        while counting.first is None and time.monotonic() < first_by and proc.poll() is None:
            time.sleep(0.01)
        assert counting.first is not None, (
            f"no request within {FIRST_REQUEST_SECONDS:g} s: " + (tmp_path / "err").read_text()
        )
        first = counting.first - started
        while _planned(data / "imgflow.db") == 0 and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "err").read_text()
            time.sleep(0.5)
        planned = _planned(data / "imgflow.db")
        proc.send_signal(signal.SIGINT)
        peak = peak_rss_until_exit(proc)
    peak_mb = peak / 2**20
    print(f"first request after {first:.2f} s; peak RSS {peak_mb:.0f} MB; "
          f"{counting.requests} requests while {ROWS:,} rows were planned")  # fmt: skip
    assert planned == ROWS
    assert first < FIRST_REQUEST_SECONDS, f"first request after {first:.2f} s"
    assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    assert proc.returncode == 130
