"""A large paths file is planned while the run fetches (its count is None until then), and a
run stopped while it was still read stays unplanned: its retry reads the file again and
covers every path it never planned, as unfinished (the CLI end to end:
tests/test_paths_stream_cli.py)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from imgflow.engine.plan import Item
from imgflow.errors import JobError
from imgflow.local.folder import DB_NAME
from imgflow.local.index import INTERRUPTED, Database
from imgflow.local.planner import Planner
from imgflow.local.retry import plan_retry
from imgflow.sources.paths import COUNTED_BYTES, from_paths_file
from imgflow.ui.progress import RunProgress

BASE = "http://127.0.0.1:40123/img"
PAD = "x" * 200  # long paths: a file over COUNTED_BYTES with few lines


def _write(file: Path, paths: list[str]) -> None:
    file.write_text("".join(f"{p}\n" for p in paths))


def _paths(n: int) -> list[str]:
    return [f"{PAD}/{i}.gif" for i in range(n)]


def test_a_large_paths_file_is_counted_as_it_is_planned(tmp_path: Path) -> None:
    paths = _paths(6000)
    large = tmp_path / "large.txt"
    _write(large, [*paths, paths[0]])  # a duplicate: planned once by the index
    assert large.stat().st_size > COUNTED_BYTES
    source = from_paths_file(BASE, str(large))
    assert source.count is None  # planned (and counted) while the run fetches
    assert source.describe()["path"] == str(large.absolute())
    assert [i.path for i in source.items()] == [*paths, paths[0]]
    small = tmp_path / "small.txt"
    _write(small, paths[:10])
    assert from_paths_file(BASE, str(small)).count == 10
    # Only the head of a large file is checked before the run: a bad line further down
    # stops the reading with one line naming it.
    (tmp_path / "bad.txt").write_text(large.read_text() + "a\tb\n")
    bad = from_paths_file(BASE, str(tmp_path / "bad.txt"))
    with pytest.raises(JobError, match=r"bad\.txt line 6002: a tab"):
        list(bad.items())


def test_a_run_stopped_while_its_paths_were_read_is_unplanned_and_retried_whole(
    tmp_path: Path,
) -> None:
    paths = _paths(6000)
    file = tmp_path / "paths.txt"
    _write(file, [*paths[:2], paths[0], *paths[2:]])
    source = from_paths_file(BASE, str(file))
    db = Database(tmp_path / DB_NAME)
    reached, go = threading.Event(), threading.Event()

    def slow() -> Iterator[Item]:
        for n, item in enumerate(source.items()):
            if n == 600:  # the interrupt comes while the file is still read
                reached.set()
                go.wait(10)
            yield item

    try:
        db.create_run("r", source, 2, 10, 1)
        planner = Planner(db.path, "r", slow())
        planner.fetching.set()
        assert reached.wait(10)
        threading.Timer(0.05, go.set).start()
        planner.stop()
        assert planner.done.is_set()
        db.conn.execute("UPDATE results SET outcome = 'stored' WHERE run_id = 'r' AND seq = 2")
        db.finish_run("r", INTERRUPTED)
        info = db.run_info("r")
        assert info is not None and not info.planned and info.total == 0
        assert info.summary.total == 599  # the paths read so far (one was a duplicate)
    finally:
        db.close()
    plan = plan_retry(tmp_path, "r")
    assert plan.unread == str(file) and plan.lost is None
    assert plan.failed == 598  # planned, never finished
    assert plan.job.source.count is None  # the rest is read again as the retry goes
    retried = [item.path for item in plan.job.source.items()]
    assert sorted(retried) == sorted(p for p in paths if p != paths[1])  # each once


def test_the_live_line_counts_an_input_still_read() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with RunProgress(console) as progress:
        progress.planned("r1", None, 0)
        progress.reading(412_000)
        live = progress._progress
        (task,) = live.tasks
        cells = [c.render(task) for c in live.columns if not isinstance(c, str)]
        shown = " ".join(cell.plain for cell in cells if isinstance(cell, Text))
        progress.planned("r1", 412_345, 0)
    text = Text.from_ansi(console.file.getvalue()).plain  # type: ignore[attr-defined]
    assert "run r1 (input still being read" in text
    assert "0/412,000+" in shown  # done / read so far, while the total is not known
    assert "0/412,345" in text  # then the total
