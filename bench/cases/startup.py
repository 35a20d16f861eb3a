"""Start-up: the wall time of `imgflow --help`."""

from __future__ import annotations

import statistics
from typing import Any

from harness.measure import measure
from harness.report import Goal
from harness.tools import Tools

HELP_SECONDS = 0.3


def run(tools: Tools, repeats: int) -> dict[str, Any]:
    """Wall time of `imgflow --help` (and of a bare interpreter, for scale)."""
    walls = [measure([tools.imgflow, "--help"]).wall for _ in range(repeats)]
    bare = [measure([tools.imgflow_python, "-c", "pass"]).wall for _ in range(repeats)]
    return {
        "help_s": statistics.median(walls),
        "python_bare_s": statistics.median(bare),
        "all_runs": walls,
    }


def section(data: dict[str, Any]) -> list[str]:
    """The start-up figures, when the case ran."""
    if "startup" not in data:
        return []
    st = data["startup"]
    return [
        "",
        "## Start-up",
        "",
        f"`imgflow --help`: {st['help_s']:.3f} s (median); a bare `python -c pass`: "
        f"{st['python_bare_s']:.3f} s.",
    ]


def goals(data: dict[str, Any]) -> list[Goal]:
    """`imgflow --help` in 0.3 s."""
    if "startup" not in data:
        return []
    help_s = data["startup"]["help_s"]
    return [("imgflow --help", "<= 0.3 s", f"{help_s:.3f} s", help_s <= HELP_SECONDS)]
