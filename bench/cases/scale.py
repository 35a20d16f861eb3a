"""Scale: the same rows at 5,000 and at 50,000 images from nginx: imgflow -c 16 x 4 batches
(files layout on one process and on two workers, webdataset on one and two, parquet) beside
curl --parallel-max 64 and img2dataset's webdataset output, and the baseline commit's
imgflow (files, webdataset, parquet) when there is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report import Goal, row_at_64
from harness.tools import Case, Tools, imgflow_argv

from cases import throughput
from cases.throughput import cpu_rows

SMALL = 5_000
RSS_RATIO = 1.1
RSS_MB = 120.0
SHARD_VS_FILES = 3.0  # issue 25: the webdataset layout at least 3x the files layout
SHARD_RSS_MB = 64.0  # issue 25: at most the shard being written (on disk here) plus 64 MB
# The rows run at 5,000 and 50,000 (the throughput case's names): imgflow's three layouts,
# the files and webdataset layouts on two worker processes too (like for like, and the best
# setting of each), the peers the shard goals name, and the aiohttp script (issue 23's
# images/s goal, here with imgflow's best setting and fsync on).
ROWS = (
    "imgflow -c 16 x 4 batches",
    "imgflow -c 16 x 4, --workers 2",
    "imgflow -c 16 x 4, --layout webdataset",
    "imgflow -c 16 x 4, --layout webdataset, --workers 2",
    "imgflow -c 16 x 4, --layout parquet",
    "curl --parallel-max 64",
    "aiohttp script, 64 workers",
    "img2dataset 2 procs x 16 threads, webdataset",
)
FILES = ("imgflow", "imgflow-w2")  # the files layout's rows (one process, two workers)
SHARDS = ("imgflow-webdataset", "imgflow-webdataset-w2", "imgflow-parquet")


def baseline_rows(tools: Tools, base: str, paths: Path) -> list[Case]:
    """The baseline commit's imgflow with each layout (before/after in the same run)."""
    if tools.baseline is None:
        return []
    argv = imgflow_argv(tools, base, paths, 16, 4, tools.baseline)
    name = tools.baseline_name
    cases = [Case(f"imgflow at {name} -c 16 x 4 batches", "imgflow-baseline", 64, argv)]
    for layout in ("webdataset", "parquet"):
        cases.append(
            Case(f"imgflow at {name} -c 16 x 4, --layout {layout}",
                 f"imgflow-baseline-{layout}", 64, [*argv, "--layout", layout])
        )  # fmt: skip
    return cases


def run(tools: Tools, corpus: Path, count: int, repeats: int) -> list[dict[str, Any]]:
    """The rows named in ROWS (and the baseline's) at `count` images, as the throughput
    case runs them."""
    return throughput.run(
        tools, corpus, count, repeats, names=ROWS, log_name="scale", extra=baseline_rows
    )


def files_row(data: dict[str, Any], key: str = "scale") -> dict[str, Any] | None:
    """imgflow's files-layout row at scale (the one row the scale case had before)."""
    scale = data.get(key)
    if isinstance(scale, dict):  # results saved before the scale case had rows
        return scale
    return next((r for r in scale or [] if r["tool"] == "imgflow" and not r.get("failed")), None)


def section(data: dict[str, Any]) -> list[str]:
    """The scale table, when the case ran: each row at 5,000 (when run) and 50,000."""
    if "scale" not in data:
        return []
    rows = data["scale"] if isinstance(data["scale"], list) else [data["scale"]]
    small = {r["name"]: r for r in data.get("scale_5k", [])}
    lines = [
        "",
        f"## Scale: the same rows at {SMALL:,} and {rows[0]['images']:,} images",
        "",
        "Peak RSS: the largest process (a run on worker processes: the sampled sum of its "
        "tree). A shard is written into a temporary file, so its bytes are on disk, not in "
        "memory.",
        "",
        "| tool | images/s 5k | images/s 50k | CPU ms/image 5k | CPU ms/image 50k | "
        "peak RSS MB 5k | peak RSS MB 50k | RSS 50k/5k | stored 50k |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cells(r: dict[str, Any] | None, field: str, form: str) -> str:
        if r is None:
            return "-"
        if r.get("failed"):
            return "failed"
        return format(r[field], form)

    for s in rows:
        if s.get("failed"):
            lines.append(f"| {s['name']} | failed: {'; '.join(s['failed'])} | | | | | | | "
                         f"{s['stored_min']}/{s['images']} |")  # fmt: skip
            continue
        f = small.get(s["name"])
        ratio = f"{s['peak_rss_mb'] / f['peak_rss_mb']:.2f}x" if f and not f.get("failed") else "-"
        lines.append(
            f"| {s['name']} | {cells(f, 'images_per_s', ',.0f')} | {s['images_per_s']:,.0f} | "
            f"{cells(f, 'cpu_ms_per_image', '.3f')} | {s['cpu_ms_per_image']:.3f} | "
            f"{cells(f, 'peak_rss_mb', '.1f')} | {s['peak_rss_mb']:.1f} | {ratio} | "
            f"{s['stored_min']}/{s['images']} |"
        )
    return lines


def _best(rows: list[dict[str, Any]], tools: tuple[str, ...]) -> dict[str, Any] | None:
    found = [r for r in (row_at_64(rows, t) for t in tools) if r]
    return max(found, key=lambda r: r["images_per_s"], default=None)


def goals(data: dict[str, Any]) -> list[Goal]:
    """Peak RSS at 50,000 images against 5,000 (the scale case's own 5,000 rows, else the
    throughput case's); the shard layouts against the files layout at 50,000, like for
    like and best setting against best setting."""
    rows: list[Goal] = []
    small = files_row(data, "scale_5k") or next(
        (r for r in cpu_rows(data) if r.get("concurrency") == 64 and r["images"] < 10_000), None
    )
    files = files_row(data)
    if files and small:
        big = files["peak_rss_mb"]
        ratio = big / small["peak_rss_mb"]
        rows.append(("peak RSS 50k / 5k", "<= 1.1x", f"{ratio:.2f}x",
                     ratio <= RSS_RATIO))  # fmt: skip
        rows.append(("peak RSS at 50k", "<= 120 MB", f"{big:.0f} MB",
                     big <= RSS_MB))  # fmt: skip
    scale = data.get("scale")
    if not (isinstance(scale, list) and files):
        return rows
    five = data.get("scale_5k", [])
    for tool in SHARDS:
        shard, at_5k = row_at_64(scale, tool), row_at_64(five, tool)
        if shard and at_5k:
            ratio = shard["peak_rss_mb"] / at_5k["peak_rss_mb"]
            rows.append((f"peak RSS 50k / 5k, {shard['name']}", f"<= {RSS_RATIO}x",
                         f"{ratio:.2f}x", ratio <= RSS_RATIO))  # fmt: skip
        like = row_at_64(scale, "imgflow-w2" if tool.endswith("-w2") else "imgflow")
        if shard and like:  # the shard is on disk: its memory is what the layout adds
            extra = shard["peak_rss_mb"] - like["peak_rss_mb"]
            rows.append((f"peak RSS at 50k over {like['name']}'s, {shard['name']}",
                         f"<= {SHARD_RSS_MB:.0f} MB", f"{extra:.0f} MB",
                         extra <= SHARD_RSS_MB))  # fmt: skip
    pairs = [(row_at_64(scale, "imgflow-webdataset"), files, "like for like"),
             (row_at_64(scale, "imgflow-webdataset-w2"), row_at_64(scale, "imgflow-w2"),
              "like for like"),
             (row_at_64(scale, "imgflow-parquet"), files, "like for like"),
             (_best(scale, SHARDS[:2]), _best(scale, FILES), "best of each")]  # fmt: skip
    for shard, base, how in pairs:
        if shard and base:
            ratio = shard["images_per_s"] / base["images_per_s"]
            rows.append((f"images/s at 50k, {shard['name']} vs {base['name']} ({how})",
                         f">= {SHARD_VS_FILES:.0f}x", f"{ratio:.2f}x",
                         ratio >= SHARD_VS_FILES))  # fmt: skip
    wds = _best(scale, SHARDS[:2])
    i2d = next((r for r in scale if r["tool"] == "img2dataset-wds" and not r.get("failed")), None)
    if wds and i2d:
        ratio = wds["images_per_s"] / i2d["images_per_s"]
        rows.append((f"images/s at 50k, {wds['name']} vs img2dataset webdataset", ">= 3x",
                     f"{ratio:.2f}x", ratio >= 3.0))  # fmt: skip
    curl = row_at_64(scale, "curl")
    if wds and curl:
        ratio = wds["images_per_s"] / curl["images_per_s"]
        rows.append((f"images/s at 50k, {wds['name']} vs curl --parallel-max 64", ">= 1x",
                     f"{ratio:.2f}x", ratio >= 1.0))  # fmt: skip
    script = row_at_64(scale, "aiohttp")
    best = _best(scale, FILES)
    if best and script:
        ratio = best["images_per_s"] / script["images_per_s"]
        rows.append((f"images/s at 50k, {best['name']} (fsync on) vs aiohttp script at 64",
                     ">= 1.2x", f"{ratio:.2f}x", ratio >= 1.2))  # fmt: skip
    return rows
