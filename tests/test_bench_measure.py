"""The bench's measure of one run (bench/harness/measure.py): a run starts with nothing
waiting to be written back, so it never pays for the files an earlier row left in memory
(with them, imgflow's default row fell back to an fsync per file: 2,400 images/s
instead of 3,700)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from harness import measure


def test_every_measured_run_starts_after_a_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "logs").mkdir()
    monkeypatch.setattr(measure, "WORK", tmp_path)
    events: list[str] = []
    popen = subprocess.Popen

    def started(*args: Any, **kwargs: Any) -> Any:
        events.append("run")
        return popen(*args, **kwargs)

    monkeypatch.setattr(measure.os, "sync", lambda: events.append("sync"))
    monkeypatch.setattr(measure.subprocess, "Popen", started)
    result = measure.measure([sys.executable, "-c", "pass"])
    assert result.rc == 0
    assert events == ["sync", "run"]
