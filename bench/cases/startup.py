"""Start-up: the wall time of `imgflow --help` and of a tab completion."""

from __future__ import annotations

import os
import statistics
from typing import Any

from harness.measure import measure
from harness.report import Goal
from harness.tools import Tools

GOAL_SECONDS = 0.15  # issue 29: --help and completion "within 0.15 s on this machine"

# A tab after `imgflow run --con`, as bash's completion function asks for it.
TAB = {"_IMGFLOW_COMPLETE": "complete_bash", "COMP_WORDS": "imgflow run --con", "COMP_CWORD": "2"}


def run(tools: Tools, repeats: int) -> dict[str, Any]:
    """Median wall times of `imgflow --help`, a completion, and a bare interpreter."""
    tab_env = {**os.environ, **TAB}
    walls = [measure([tools.imgflow, "--help"]).wall for _ in range(repeats)]
    tabs = [measure([tools.imgflow], env=tab_env).wall for _ in range(repeats)]
    bare = [measure([tools.imgflow_python, "-c", "pass"]).wall for _ in range(repeats)]
    return {
        "help_s": statistics.median(walls),
        "complete_s": statistics.median(tabs),
        "python_bare_s": statistics.median(bare),
        "all_runs": walls,
        "all_tabs": tabs,
    }


def section(data: dict[str, Any]) -> list[str]:
    """The start-up figures, when the case ran."""
    if "startup" not in data:
        return []
    st = data["startup"]
    tab = f"; a tab completion: {st['complete_s']:.3f} s" if "complete_s" in st else ""
    return [
        "",
        "## Start-up",
        "",
        f"`imgflow --help`: {st['help_s']:.3f} s (median){tab}; a bare `python -c pass`: "
        f"{st['python_bare_s']:.3f} s.",
    ]


def goals(data: dict[str, Any]) -> list[Goal]:
    """`imgflow --help` and a completion within 0.15 s."""
    if "startup" not in data:
        return []
    st = data["startup"]
    found = [("imgflow --help", st["help_s"])]
    if "complete_s" in st:
        found.append(("tab completion", st["complete_s"]))
    return [(name, f"<= {GOAL_SECONDS} s", f"{s:.3f} s", s <= GOAL_SECONDS) for name, s in found]
