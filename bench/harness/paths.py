"""Where the benchmark's files live: the checkout, bench/, bench/work/ and the results."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
MB = 1024 * 1024
