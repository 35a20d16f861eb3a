"""The bench's goal table reports issue 23's per-image goals (bench/cases/throughput.py):
fsync off against the aiohttp script (CPU at most 0.9x, images/s at least 1.2x), fsync on
within 1.3x of fsync off, and fsync off against curl (at least 0.8x)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from cases import throughput


def _row(tool: str, rate: float, cpu: float, concurrency: int = 64) -> dict[str, Any]:
    return {"tool": tool, "name": tool, "concurrency": concurrency,
            "images_per_s": rate, "cpu_ms_per_image": cpu}  # fmt: skip


def test_the_goal_table_holds_issue_23_s_targets() -> None:
    rows = [
        _row("imgflow", 3_900, 0.250),
        _row("imgflow-nofsync", 4_000, 0.200),
        _row("aiohttp", 9_999, 0.001, concurrency=16),  # the script at 16: not this goal's
        _row("aiohttp", 3_000, 0.240),
        _row("curl", 20_000, 0.050),
    ]
    goals = {name: (target, measured, met) for name, target, measured, met in
             throughput.goals({"throughput": rows})}  # fmt: skip
    assert goals["CPU per image, fsync off vs aiohttp script at 64"] == ("<= 0.9x", "0.83x", True)
    assert goals["images/s, fsync off vs aiohttp script at 64"] == (">= 1.2x", "1.33x", True)
    assert goals["CPU per image, fsync on (default) vs fsync off at 64"] == (
        "<= 1.3x", "1.25x", True)  # fmt: skip
    assert goals["images/s, fsync off vs curl --parallel-max 64"] == (">= 0.8x", "0.20x", False)


def test_a_goal_whose_rows_did_not_run_is_left_out() -> None:
    goals = throughput.per_image_goals([_row("imgflow", 3_900, 0.250)])
    assert goals == []
