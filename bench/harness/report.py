"""The results file: the machine, its header, the goals table, and where it is written."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from harness.paths import RESULTS

Goal = tuple[str, str, str, bool | None]  # (goal, target, measured, met)


def machine() -> dict[str, Any]:
    def shell(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return "unavailable"

    return {
        "nproc": shell(["nproc"]),
        "free_g": shell(["free", "-g"]),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            "nginx": shell(["nginx", "-v"]) or "see stderr",
            "curl": shell(["curl", "--version"]).split("\n")[0],
            "wget": shell(["wget", "--version"]).split("\n")[0],
            "aria2c": shell(["aria2c", "--version"]).split("\n")[0],
        },
    }


def header(data: dict[str, Any]) -> list[str]:
    """The title, the machine and how to read the figures."""
    m = data["machine"]
    return [
        f"# imgflow benchmark, {data['date']}{' (quick)' if data['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, `nproc` = {m['nproc']}, kernel {m['kernel']}, "
        f"Python {m['python']}. Command: `{data['command']}`; total {data['seconds']:.0f} s.",
        "",
        "```",
        "$ free -g",
        m["free_g"],
        "```",
        "",
        f"All traffic on 127.0.0.1. Medians of {data['repeats']} runs. Rates are by wall time "
        "of the whole process (start-up included); CPU is user+sys of the process tree; RSS is "
        "the peak of the largest process.",
    ]


def goals_table(goals: list[Goal]) -> list[str]:
    """The goals section: one line per goal this run measured."""
    out = ["", "## Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    for goal, target, measured, met in goals:
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        out.append(f"| {goal} | {target} | {measured} | {mark} |")
    return out


def row_at_64(rows: list[dict[str, Any]], tool: str) -> dict[str, Any] | None:
    """The row of `tool` at 64 in flight (None when it failed: not every image stored)."""
    return next(
        (r for r in rows if r["tool"] == tool and r["concurrency"] == 64 and not r.get("failed")),
        None,
    )


def save(data: dict[str, Any], text: str) -> Path:
    """Write ``bench/results/<date>[-quick].md`` and ``.json``; their path without suffix."""
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (data["date"] + ("-quick" if data["quick"] else ""))
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    return stem
