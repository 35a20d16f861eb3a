"""Measuring a child process (wall time, CPU, peak RSS) and summarising runs."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.paths import WORK

IMAGE_SUFFIXES = frozenset({".gif", ".png", ".jpg", ".jpeg"})


@dataclass
class Measure:
    """One run of one tool."""

    wall: float
    cpu: float
    rss_mb: float
    images: int
    rc: int
    cause: str = ""  # why the run failed (a non-zero exit, images not stored); "" when it did not


def measure(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    log: Path | None = None,
    stdout_to: Path | None = None,
) -> Measure:
    """Run `cmd` and return its wall time, CPU (user+sys) and peak RSS (not the image count)."""
    out = open(stdout_to, "wb") if stdout_to else subprocess.DEVNULL  # noqa: SIM115
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    peak_file = WORK / "logs" / f"peak-{os.getpid()}"
    peak_file.unlink(missing_ok=True)
    if GNU_TIME:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(peak_file), *cmd]
    # Every run starts with nothing waiting to be written back: the files an earlier run left
    # in memory (80 MB for 5,000 small images with fsync off) would otherwise be written on
    # this run's time, by its fsyncs or the kernel's flusher, and a tool's figure would
    # depend on which tool ran before it.
    os.sync()
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)
        deadline = start + timeout
        tree_peak, polls = 0, 0
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                polls += 1
                if polls % TREE_EVERY == 0:
                    tree_peak = max(tree_peak, tree_rss(proc.pid))
                time.sleep(0.002)
        except BaseException:  # the bench stopped (Ctrl-C, SIGTERM): its tool with it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for handle in (out, err):
            if not isinstance(handle, int):
                handle.close()
    cpu = usage.ru_utime + usage.ru_stime
    # The largest one process of the tree reached (not their sum): a run on worker
    # processes is counted by the sampled sum of its tree's RSS where that is more. Not
    # wait4's ru_maxrss of our own child: Python starts it with vfork, and Linux keeps the
    # larger of the peaks before and after exec, so a tool was given this bench process's
    # RSS (70-90 MB once it has counted Parquet rows with pyarrow: curl showed 69 and 89 MB
    # where GNU time says 16-24). GNU time forks from its own 2 MB and reports the tool's.
    rss_kb = max(_peak_kb(peak_file, usage.ru_maxrss), tree_peak)
    return Measure(wall, cpu, rss_kb / 1024, 0, proc.returncode)


GNU_TIME = next((t for t in ("/usr/bin/time",) if os.access(t, os.X_OK)), "")


def _peak_kb(peak_file: Path, fallback: int) -> int:
    """GNU time's %M (the last line of its output file), else `fallback`."""
    try:
        lines = peak_file.read_text().split()
        peak_file.unlink()
        return int(lines[-1])
    except (OSError, ValueError, IndexError):
        return fallback


TREE_EVERY = 10  # polls (of 2 ms) between two samples of the process tree's RSS


def tree_rss(pid: int) -> int:
    """The summed RSS (KiB) of `pid` and its descendants now (Linux /proc; 0 elsewhere)."""
    total, todo = 0, [pid]
    while todo:
        each = todo.pop()
        try:
            with open(f"/proc/{each}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * PAGE_KB
            for task in os.listdir(f"/proc/{each}/task"):
                with open(f"/proc/{each}/task/{task}/children", "rb") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (OSError, ValueError):
            continue
    return total


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def count_images(folder: Path) -> int:
    """Image files anywhere under `folder`, and images inside tar shards (imgflow's
    webdataset layout, img2dataset's webdataset output) and Parquet shards with an
    `image` column (imgflow's parquet layout)."""
    total = 0
    for top, _, files in os.walk(folder):
        total += sum(1 for name in files if os.path.splitext(name)[1] in IMAGE_SUFFIXES)
        for name in files:
            if name.endswith(".tar"):
                total += _tar_images(Path(top) / name)
            elif name.endswith(".parquet"):
                total += _parquet_images(Path(top) / name)
    return total


def _tar_images(path: Path) -> int:
    import tarfile

    try:
        with tarfile.open(path) as tar:
            return sum(1 for n in tar.getnames() if os.path.splitext(n)[1] in IMAGE_SUFFIXES)
    except (OSError, tarfile.TarError):
        return 0


def _parquet_images(path: Path) -> int:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return 0
    try:
        found = pq.ParquetFile(path)
    except Exception:
        return 0
    return found.metadata.num_rows if "image" in found.schema_arrow.names else 0


def failure(result: Measure, expected: int, said: str) -> str:
    """Why a run does not count ("" when it does): a non-zero exit or an image not stored,
    with the last line the tool said on stderr (`said`)."""
    if result.rc == 0 and result.images == expected:
        return ""
    cause = f"exit {result.rc}, stored {result.images} of {expected}"
    last = [line for line in said.splitlines() if line.strip()][-1:]
    return f"{cause}: {last[0].strip()[:200]}" if last else cause


def summarise(runs: Sequence[Measure], expected: int) -> dict[str, Any]:
    """Medians over the runs: images/s by wall time, CPU ms per image, peak RSS; `failed`
    holds the causes of runs that did not store every image (such a row is no result)."""
    return {
        "failed": sorted({r.cause for r in runs if r.cause}),
        "runs": len(runs),
        "images": expected,
        "stored_min": min(r.images for r in runs),
        "wall_s": statistics.median(r.wall for r in runs),
        "images_per_s": statistics.median(expected / r.wall for r in runs),
        "cpu_ms_per_image": statistics.median(1000 * r.cpu / expected for r in runs),
        "peak_rss_mb": statistics.median(r.rss_mb for r in runs),
        "all_runs": [asdict(r) for r in runs],
    }
