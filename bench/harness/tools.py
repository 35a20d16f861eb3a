"""The tools under test (imgflow and its peers), a table row of one tool at a concurrency,
and running rows in interleaved rounds."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.measure import Measure, count_images, failure, measure, summarise
from harness.paths import WORK


@dataclass(frozen=True)
class Tools:
    """Where each tool lives (None: not installed)."""

    imgflow: str
    imgflow_python: str
    peers_python: str | None
    img2dataset: str | None
    curl: str | None
    wget: str | None
    aria2c: str | None
    baseline: str | None = None  # imgflow of IMGFLOW_BASELINE's commit
    baseline_name: str = ""
    only: str = ""  # --tools: only these tools in the throughput and large cases


def find_tools(args: argparse.Namespace) -> Tools:
    imgflow_python = args.imgflow_python
    imgflow = str(Path(imgflow_python).parent / "imgflow")
    peers = WORK / "venv-peers"
    i2d = WORK / "venv-i2d"
    return Tools(
        imgflow=imgflow,
        imgflow_python=imgflow_python,
        peers_python=str(peers / "bin" / "python") if (peers / ".ok").exists() else None,
        img2dataset=(
            str(i2d / "bin" / "img2dataset")
            if (i2d / ".ok").exists() and not args.no_img2dataset
            else None
        ),
        curl=shutil.which("curl"),
        wget=shutil.which("wget"),
        aria2c=shutil.which("aria2c"),
        baseline=(
            str(Path(args.baseline_python).parent / "imgflow") if args.baseline_python else None
        ),
        baseline_name=args.baseline_name,
        only=args.tools,
    )


OUT = "{out}"


@dataclass
class Case:
    """One line of the throughput table: a tool at a concurrency; `{out}` in argv is its folder."""

    name: str
    tool: str
    concurrency: int
    argv: list[str]
    env: dict[str, str] | None = None
    runs: list[Measure] = field(default_factory=list)

    def build(self, out: Path) -> list[str]:
        return [arg.replace(OUT, str(out)) for arg in self.argv]


def imgflow_argv(
    tools: Tools, base: str, paths: Path, per_batch: int, batches: int, binary: str = ""
) -> list[str]:
    return [
        binary or tools.imgflow, "run", "--base-url", base, "--paths-file", str(paths),
        "-c", str(per_batch), "--max-batches", str(batches), "--data-dir", OUT,
        "--output", "json",
    ]  # fmt: skip


def write_lists(base: str, paths: Sequence[str], folder: Path) -> dict[str, Path]:
    """The same URL list in each tool's input format."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / name for name in ("paths", "urls", "curl", "aria2")}
    files["paths"].write_text("".join(f"{p}\n" for p in paths))
    files["urls"].write_text("".join(f"{base}/{p}\n" for p in paths))
    files["curl"].write_text("".join(f'url = "{base}/{p}"\noutput = "{p}"\n' for p in paths))
    files["aria2"].write_text("".join(f"{base}/{p}\n  out={p}\n" for p in paths))
    return files


def selected(cases: list[Case], tools: str) -> list[Case]:
    """The cases of the tools named in `tools` (comma-separated, `imgflow*` for every
    imgflow row; empty: all)."""
    names = [t.strip() for t in tools.split(",") if t.strip()]

    def chosen(tool: str) -> bool:
        return any(tool == n or (n.endswith("*") and tool.startswith(n[:-1])) for n in names)

    return [c for c in cases if not names or chosen(c.tool)]


# A run's output of more files than this is set aside (renamed into bench/work/spent/) rather
# than deleted, and deleted when bench.py ends (and at its start: what a stopped run left).
# Right after a large deletion ext4 creates files much more slowly (its allocator skips the
# inodes freed recently, one by one: docs/architecture.md), and not only for a minute: 65 s
# after `rm -rf` and `sync`, curl still took 3.1 s of kernel time for 5,000 files, against
# 0.2-0.5 s into a new folder when no output had been deleted. Deleting between runs made a
# files row pay that after a files row and not after a shard row (few files), and made the
# cost per image depend on the run's size (the first few thousand files pay it). Disk: every
# output of many files of one bench run at once (the scale case at --quick: about 3.5 GB).
SPENT_FILES = 500
SPENT = WORK / "spent"


def files_under(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def set_aside(out: Path) -> None:
    """Delete a run's output of few files; set one of many aside until `clear_spent`."""
    if files_under(out) <= SPENT_FILES:
        shutil.rmtree(out, ignore_errors=True)
        return
    SPENT.mkdir(parents=True, exist_ok=True)
    out.rename(SPENT / f"{len(os.listdir(SPENT))}-{os.getpid()}")


def clear_spent() -> None:
    """Delete the outputs set aside (bench.py, at its start and end)."""
    shutil.rmtree(SPENT, ignore_errors=True)


def run_case(case: Case, expected: int, log: Path) -> Measure:
    out = WORK / "out"
    if out.exists():  # a run stopped before its output was set aside
        set_aside(out)
    out.mkdir(parents=True)
    with log.open("a") as handle:
        handle.write(f"\n== {case.name}\n")
    start = log.stat().st_size
    result = measure(case.build(out), env=case.env, log=log, timeout=600)
    result.images = count_images(out)
    with log.open("rb") as handle:
        handle.seek(start)
        said = handle.read().decode(errors="replace")
    result.cause = failure(result, expected, said)
    if result.cause:
        print(f"  FAILED: {case.name}: {result.cause}", flush=True)
    case.runs.append(result)
    set_aside(out)
    return result


def run_rounds(
    cases: list[Case],
    count: int,
    repeats: int,
    log: Path,
    show: Callable[[Measure], str],
    around: Callable[[Case], AbstractContextManager[object]] | None = None,
) -> list[dict[str, Any]]:
    """Run every case `repeats` times, interleaved; one summary row per case.

    Every other round runs in reverse order (A B C, C B A, A B C), so no row always runs
    first or always follows the same neighbour: on a shared machine a run pays for what
    the one before left behind (dirty pages being written back, a deleted tree).
    `around(case)`, when given, is entered around each run of a case (a server's counters).
    Outputs of many files are set aside, not deleted (`set_aside`), so no run follows a
    large deletion."""
    for repeat in range(repeats):
        for case in cases if repeat % 2 == 0 else cases[::-1]:
            with around(case) if around is not None else contextlib.nullcontext():
                r = run_case(case, count, log)
            shown = f"FAILED ({r.cause})" if r.cause else show(r)
            print(f"  [{repeat + 1}/{repeats}] {case.name:<36} {shown}", flush=True)
    return [
        {"name": c.name, "tool": c.tool, "concurrency": c.concurrency} | summarise(c.runs, count)
        for c in cases
    ]
