"""Scale: 50,000 images from nginx, imgflow -c 16 x 4 batches (files, webdataset and parquet
layouts) beside curl --parallel-max 64 and img2dataset's webdataset output, against the
5,000-image run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report import Goal, row_at_64
from harness.tools import Tools

from cases import throughput
from cases.throughput import cpu_rows

RSS_RATIO = 1.1
RSS_MB = 120.0
SHARD_VS_FILES = 3.0  # issue 25: the webdataset layout at least 3x the files layout
# The rows run at 50,000 (the throughput case's names): imgflow's three layouts and the peers
# the shard goals name.
ROWS = (
    "imgflow -c 16 x 4 batches",
    "imgflow -c 16 x 4, --layout webdataset",
    "imgflow -c 16 x 4, --layout parquet",
    "curl --parallel-max 64",
    "img2dataset 2 procs x 16 threads, webdataset",
)


def run(tools: Tools, corpus: Path, count: int, repeats: int) -> list[dict[str, Any]]:
    """The rows named in ROWS at `count` images (50,000), as the throughput case runs them."""
    return throughput.run(tools, corpus, count, repeats, names=ROWS, log_name="scale")


def files_row(data: dict[str, Any]) -> dict[str, Any] | None:
    """imgflow's files-layout row at scale (the one row the scale case had before)."""
    scale = data.get("scale")
    if isinstance(scale, dict):  # results saved before the scale case had rows
        return scale
    return next((r for r in scale or [] if r["tool"] == "imgflow"), None)


def section(data: dict[str, Any]) -> list[str]:
    """The scale table, when the case ran."""
    if "scale" not in data:
        return []
    rows = data["scale"] if isinstance(data["scale"], list) else [data["scale"]]
    lines = [
        "",
        f"## Scale: {rows[0]['images']:,} images",
        "",
        "| tool | images/s | CPU ms/image | peak RSS MB | stored |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in rows:
        lines.append(
            f"| {s['name']} | {s['images_per_s']:,.0f} | {s['cpu_ms_per_image']:.3f} | "
            f"{s['peak_rss_mb']:.1f} | {s['stored_min']}/{s['images']} |"
        )
    return lines


def goals(data: dict[str, Any]) -> list[Goal]:
    """Peak RSS at 50,000 images, against the 5,000-image run at 64 in flight; the shard
    layouts against the files layout at 50,000."""
    rows: list[Goal] = []
    small = next((r for r in cpu_rows(data) if r.get("concurrency") == 64 and r["images"] < 10_000),
                 None)  # fmt: skip
    files = files_row(data)
    if files and small:
        big = files["peak_rss_mb"]
        ratio = big / small["peak_rss_mb"]
        rows.append(("peak RSS 50k / 5k", "<= 1.1x", f"{ratio:.2f}x",
                     ratio <= RSS_RATIO))  # fmt: skip
        rows.append(("peak RSS at 50k", "<= 120 MB", f"{big:.0f} MB",
                     big <= RSS_MB))  # fmt: skip
    scale = data.get("scale")
    if isinstance(scale, list) and files:
        for tool in ("imgflow-webdataset", "imgflow-parquet"):
            shard = row_at_64(scale, tool)
            if shard:
                ratio = shard["images_per_s"] / files["images_per_s"]
                rows.append((f"images/s at 50k, {shard['name']} vs files layout",
                             f">= {SHARD_VS_FILES:.0f}x", f"{ratio:.2f}x",
                             ratio >= SHARD_VS_FILES))  # fmt: skip
        wds, i2d = (
            row_at_64(scale, "imgflow-webdataset"),
            next(
                (r for r in scale if r["tool"] == "img2dataset-wds" and not r.get("failed")), None
            ),
        )
        if wds and i2d:
            ratio = wds["images_per_s"] / i2d["images_per_s"]
            rows.append(("images/s at 50k, webdataset vs img2dataset webdataset", ">= 3x",
                         f"{ratio:.2f}x", ratio >= 3.0))  # fmt: skip
        curl = row_at_64(scale, "curl")
        if wds and curl:
            ratio = wds["images_per_s"] / curl["images_per_s"]
            rows.append(("images/s at 50k, webdataset vs curl --parallel-max 64", ">= 1x",
                         f"{ratio:.2f}x", ratio >= 1.0))  # fmt: skip
    return rows
