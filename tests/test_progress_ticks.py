"""The live bar is updated once per tick, not once per image, and ends on the exact counts."""

from __future__ import annotations

import io

from rich.console import Console

from imgflow.engine.records import Outcome, ResultRecord
from imgflow.ui.progress import RunProgress


def test_the_bar_moves_once_per_tick_and_ends_on_every_record() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    progress = RunProgress(console)
    updates = 0
    update = progress._progress.update

    def counted(*args: object, **kwargs: object) -> None:
        nonlocal updates
        updates += 1
        update(*args, **kwargs)  # type: ignore[arg-type]

    progress._progress.update = counted  # type: ignore[method-assign]
    with progress:
        progress.planned("r1", 2000, 0)
        for i in range(2000):
            outcome = Outcome.FAILED if i % 100 == 0 else Outcome.STORED
            progress.record(ResultRecord(f"u{i}", f"{i}.gif", outcome, 200, f"{i}.gif", 10))
    task = progress._progress.tasks[0]
    assert task.completed == 2000
    assert task.fields["failed"] == 20
    assert updates < 50, f"{updates} updates of the bar for 2000 records"
