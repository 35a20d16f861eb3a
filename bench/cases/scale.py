"""Scale: 50,000 images from nginx, imgflow -c 16 x 4 batches, against the 5,000-image run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.corpus import corpus_paths
from harness.measure import summarise
from harness.paths import WORK
from harness.report import Goal
from harness.servers import nginx
from harness.tools import Case, Tools, imgflow_argv, run_case, write_lists

from cases.throughput import cpu_rows

RSS_RATIO = 1.1
RSS_MB = 120.0


def run(tools: Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    paths = corpus_paths(count)
    log = WORK / "logs" / "scale.log"
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-{count}")
        case = Case("imgflow -c 16 x 4 batches", "imgflow", 64,
                    imgflow_argv(tools, base, files["paths"], 16, 4))  # fmt: skip
        for repeat in range(repeats):
            r = run_case(case, count, log)
            print(
                f"  [{repeat + 1}/{repeats}] {count:,} images {count / r.wall:>8.0f} img/s "
                f"{1000 * r.cpu / count:>6.3f} ms CPU/img {r.rss_mb:>6.1f} MB",
                flush=True,
            )
    return {"name": case.name, "concurrency": 64} | summarise(case.runs, count)


def section(data: dict[str, Any]) -> list[str]:
    """The scale table, when the case ran."""
    if "scale" not in data:
        return []
    s = data["scale"]
    return [
        "",
        f"## Scale: {s['images']:,} images, imgflow -c 16 x 4 batches",
        "",
        "| images | images/s | CPU ms/image | peak RSS MB | stored |",
        "|---:|---:|---:|---:|---:|",
        f"| {s['images']:,} | {s['images_per_s']:,.0f} | {s['cpu_ms_per_image']:.3f} | "
        f"{s['peak_rss_mb']:.1f} | {s['stored_min']}/{s['images']} |",
    ]


def goals(data: dict[str, Any]) -> list[Goal]:
    """Peak RSS at 50,000 images, and against the 5,000-image run at 64 in flight."""
    rows: list[Goal] = []
    small = next((r for r in cpu_rows(data) if r.get("concurrency") == 64 and r["images"] < 10_000),
                 None)  # fmt: skip
    if "scale" in data and small:
        big = data["scale"]["peak_rss_mb"]
        ratio = big / small["peak_rss_mb"]
        rows.append(("peak RSS 50k / 5k", "<= 1.1x", f"{ratio:.2f}x",
                     ratio <= RSS_RATIO))  # fmt: skip
        rows.append(("peak RSS at 50k", "<= 120 MB", f"{big:.0f} MB",
                     big <= RSS_MB))  # fmt: skip
    return rows
