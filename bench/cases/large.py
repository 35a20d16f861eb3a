"""Large images: 200 of 1-8 MB from nginx; imgflow's MB/s, CPU per MB and peak RSS against
curl (also made durable) and the aiohttp script."""

from __future__ import annotations

import os
import shlex
import statistics
from pathlib import Path
from typing import Any

from harness.corpus import large_paths
from harness.paths import BENCH, MB, WORK
from harness.report import Goal, row_at_64
from harness.servers import nginx
from harness.tools import OUT, Case, Tools, imgflow_argv, run_rounds, selected, write_lists

from cases.throughput import baseline_cases

COUNT = 200
VS_CURL = 0.8
RSS_RATIO = 1.5


def run(tools: Tools, corpus: Path, count: int, repeats: int) -> list[dict[str, Any]]:
    """imgflow, curl and the aiohttp script at 64 in flight on 1-8 MB images: MB/s, CPU
    ms per MB and peak RSS (the memory a streamed body needs, against small images)."""
    pairs = large_paths(count)
    total_mb = sum(size for _, size in pairs) / MB
    log = WORK / "logs" / "large.log"
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, [p for p, _ in pairs], WORK / f"lists-large-{count}")
        paths = files["paths"]
        per_batch = ["--batch-size", str(count // 4)]
        argv = imgflow_argv(tools, base, paths, 16, 4) + per_batch
        cases = [
            Case("imgflow -c 16 x 4 batches", "imgflow", 64, argv),
            Case("imgflow -c 16 x 4, fsync off", "imgflow-nofsync", 64, argv, env=no_fsync),
            *baseline_cases(tools, base, paths, no_fsync, count // 4),
        ]
        if tools.curl:
            curl = [tools.curl, "-s", "--parallel", "--parallel-max", "64", "--create-dirs",
                    "-K", str(files["curl"]), "--output-dir", OUT]  # fmt: skip
            cases.append(Case("curl --parallel-max 64", "curl", 64, curl))
            # imgflow fsyncs every image by default; curl never does. This row is curl made
            # as durable: each file it wrote fsynced afterwards (coreutils' sync FILE...).
            durable = f"{shlex.join(curl)} && find {OUT} -type f -exec sync {{}} +"
            cases.append(Case("curl --parallel-max 64, then fsync each file", "curl-fsync",
                              64, ["sh", "-c", durable]))  # fmt: skip
        if tools.peers_python:
            script = str(BENCH / "peers" / "aiohttp_fetch.py")
            cases.append(Case("aiohttp script, 64 workers", "aiohttp", 64, [
                tools.peers_python, script, base, str(paths), OUT, "64"]))  # fmt: skip
        cases = selected(cases, tools.only)
        rows = run_rounds(
            cases,
            count,
            repeats,
            log,
            lambda r: (
                f"{total_mb / r.wall:>8.0f} MB/s {1000 * r.cpu / total_mb:>6.2f} ms CPU/MB "
                f"{r.rss_mb:>6.1f} MB"
            ),
        )
    for row, case in zip(rows, cases, strict=True):
        row["total_mb"] = total_mb
        row["mb_per_s"] = statistics.median(total_mb / r.wall for r in case.runs)
        row["cpu_ms_per_mb"] = statistics.median(1000 * r.cpu / total_mb for r in case.runs)
    return rows


def section(data: dict[str, Any]) -> list[str]:
    """The large-image table, when the case ran."""
    if "large" not in data:
        return []
    total = data["large"][0]["total_mb"] if data["large"] else 0
    out = [
        "",
        f"## Large images: {COUNT} images of 1-8 MB ({total:,.0f} MB) from nginx",
        "",
        "| tool | in flight | MB/s | CPU ms/MB | peak RSS MB | stored |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data["large"]:
        out.append(
            f"| {r['name']} | {r['concurrency']} | {r['mb_per_s']:,.0f} | "
            f"{r['cpu_ms_per_mb']:.2f} | {r['peak_rss_mb']:.1f} | "
            f"{r['stored_min']}/{r['images']} |"
        )
    return out


def goals(data: dict[str, Any]) -> list[Goal]:
    """imgflow's MB/s against curl's on large images; its peak RSS against small images."""
    rows: list[Goal] = []
    large = data.get("large", [])
    curl = row_at_64(large, "curl")
    target = VS_CURL
    for tool in ("imgflow", "imgflow-nofsync"):
        ours = row_at_64(large, tool)
        if ours and curl:
            ratio = ours["mb_per_s"] / curl["mb_per_s"]
            rows.append((f"large images: {ours['name']} vs curl at 64, MB/s", f">= {target}x",
                         f"{ratio:.2f}x", ratio >= target))  # fmt: skip
        durable = row_at_64(large, "curl-fsync")
        if tool == "imgflow" and ours and durable:  # both fsync every file
            ratio = ours["mb_per_s"] / durable["mb_per_s"]
            rows.append((f"large images: {ours['name']} vs curl then fsync of each file, MB/s",
                         f">= {target}x", f"{ratio:.2f}x", ratio >= target))  # fmt: skip
        small = row_at_64(data.get("throughput", []), tool)
        if ours and small:
            ratio = ours["peak_rss_mb"] / small["peak_rss_mb"]
            limit = RSS_RATIO
            rows.append((f"peak RSS, large / small images, {ours['name']}", f"<= {limit}x",
                         f"{ratio:.2f}x ({ours['peak_rss_mb']:.0f} / "
                         f"{small['peak_rss_mb']:.0f} MB)", ratio <= limit))  # fmt: skip
    return rows
