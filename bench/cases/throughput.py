"""Throughput: 5,000 images of 2-30 KB from nginx, imgflow against its peers (and the
baseline commit's imgflow when there is one)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.corpus import corpus_paths
from harness.paths import BENCH, WORK
from harness.report import Goal, row_at_64
from harness.servers import nginx
from harness.tools import OUT, Case, Tools, imgflow_argv, run_rounds, selected, write_lists

GOALS = {"vs_aiohttp_64": 1.0, "vs_img2dataset_64": 5.0, "cpu_ms_per_image": 0.3}
VS_BASELINE = 0.95
# Issue 23's goals at 64 in flight, fsync off against the aiohttp script (one file and one
# SQLite row an image, no fsync): CPU an image at most 0.9x its, images/s at least 1.2x;
# the default (fsync on) within 1.3x of fsync off's CPU; at least 0.8x curl's images/s.
PER_IMAGE = {"cpu_vs_script": 0.9, "rate_vs_script": 1.2, "fsync_cost": 1.3, "vs_curl": 0.8}


def throughput_cases(tools: Tools, base: str, files: dict[str, Path]) -> list[Case]:
    """Every tool of the throughput case that is installed."""
    cases: list[Case] = []
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    paths = files["paths"]
    for total, per_batch in ((16, 4), (64, 16)):
        cases.append(
            Case(f"imgflow -c {per_batch} x 4 batches", "imgflow", total,
                 imgflow_argv(tools, base, paths, per_batch, 4))
        )  # fmt: skip
    cases.append(
        Case("imgflow -c 16 x 4, fsync off", "imgflow-nofsync", 64,
             imgflow_argv(tools, base, paths, 16, 4), env=no_fsync)
    )  # fmt: skip
    # The same on worker processes (--workers: one run, each host's limits shared).
    for workers in ("2", "auto"):
        cases.append(
            Case(f"imgflow -c 16 x 4, --workers {workers}", f"imgflow-w{workers}", 64,
                 [*imgflow_argv(tools, base, paths, 16, 4), "--workers", workers])
        )  # fmt: skip
    cases.append(
        Case("imgflow -c 16 x 4, fsync off, --workers 2", "imgflow-nofsync-w2", 64,
             [*imgflow_argv(tools, base, paths, 16, 4), "--workers", "2"], env=no_fsync)
    )  # fmt: skip
    # The same with httpx's own transport (fetch.transport: httpx), for comparison.
    cases.append(
        Case("imgflow -c 16 x 4, fsync off, httpx transport", "imgflow-httpx", 64,
             imgflow_argv(tools, base, paths, 16, 4),
             env={**no_fsync, "IMGFLOW_FETCH_TRANSPORT": "httpx"})
    )  # fmt: skip
    # Shard layouts (issue 25): the same 64 in flight, images gathered into shards.
    for layout in ("webdataset", "parquet"):
        cases.append(
            Case(f"imgflow -c 16 x 4, --layout {layout}", f"imgflow-{layout}", 64,
                 [*imgflow_argv(tools, base, paths, 16, 4), "--layout", layout])
        )  # fmt: skip
    cases.append(  # each worker writes shards of its own (issue 26)
        Case("imgflow -c 16 x 4, --layout webdataset, --workers 2", "imgflow-webdataset-w2", 64,
             [*imgflow_argv(tools, base, paths, 16, 4), "--layout", "webdataset",
              "--workers", "2"])
    )  # fmt: skip
    cases += baseline_cases(tools, base, paths, no_fsync)
    for n in (16, 64):
        if tools.curl:
            cases.append(Case(f"curl --parallel-max {n}", "curl", n, [
                tools.curl, "-s", "--parallel", "--parallel-max", str(n), "--create-dirs",
                "-K", str(files["curl"]), "--output-dir", OUT]))  # fmt: skip
        if tools.aria2c:
            cases.append(Case(f"aria2c -j {n}", "aria2c", n, [
                tools.aria2c, "-q", "-i", str(files["aria2"]), "-d", OUT, "-j", str(n),
                "--file-allocation=none", "--allow-overwrite=true",
                "--auto-file-renaming=false", "--console-log-level=error"]))  # fmt: skip
        if tools.peers_python:
            script = str(BENCH / "peers" / "aiohttp_fetch.py")
            cases.append(Case(f"aiohttp script, {n} workers", "aiohttp", n, [
                tools.peers_python, script, base, str(paths), OUT, str(n)]))  # fmt: skip
    if tools.wget:
        cases.append(Case("wget -i (sequential)", "wget", 1, [
            tools.wget, "-q", "-i", str(files["urls"]), "-x", "-nH", "-P", OUT]))  # fmt: skip
    if tools.img2dataset:
        cases.append(Case("img2dataset 2 procs x 16 threads", "img2dataset", 32, [
            tools.img2dataset, "--url_list", str(files["urls"]), "--input_format", "txt",
            "--output_folder", OUT, "--output_format", "files", "--resize_mode", "no",
            "--processes_count", "2", "--thread_count", "16",
            "--number_sample_per_shard", "1000", "--enable_wandb", "False",
            "--retries", "0", "--timeout", "20"]))  # fmt: skip
        cases.append(Case("img2dataset 2 procs x 16 threads, webdataset", "img2dataset-wds", 32, [
            tools.img2dataset, "--url_list", str(files["urls"]), "--input_format", "txt",
            "--output_folder", OUT, "--output_format", "webdataset", "--resize_mode", "no",
            "--processes_count", "2", "--thread_count", "16",
            "--number_sample_per_shard", "1000", "--enable_wandb", "False",
            "--retries", "0", "--timeout", "20"]))  # fmt: skip
    return cases


def baseline_cases(
    tools: Tools, base: str, paths: Path, no_fsync: dict[str, str], batch_size: int = 0
) -> list[Case]:
    """imgflow at 64 in flight, fsync on and off, as built from the baseline commit."""
    if tools.baseline is None:
        return []
    extra = ["--batch-size", str(batch_size)] if batch_size else []
    argv = imgflow_argv(tools, base, paths, 16, 4, tools.baseline) + extra
    name = tools.baseline_name
    return [
        Case(f"imgflow at {name} -c 16 x 4 batches", "imgflow-baseline", 64, argv),
        Case(f"imgflow at {name} -c 16 x 4, fsync off", "imgflow-baseline-nofsync", 64, argv,
             env=no_fsync),
        Case(f"imgflow at {name} -c 16 x 4, --workers 2", "imgflow-baseline-w2", 64,
             [*argv, "--workers", "2"]),
    ]  # fmt: skip


def run(
    tools: Tools,
    corpus: Path,
    count: int,
    repeats: int,
    names: tuple[str, ...] = (),
    log_name: str = "throughput",
    extra: Callable[[Tools, str, Path], list[Case]] | None = None,
) -> list[dict[str, Any]]:
    """Every row (or only those named in `names`, and those `extra(tools, base, paths)`
    adds) at `count` images, interleaved."""
    paths = corpus_paths(count)
    log = WORK / "logs" / f"{log_name}.log"
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-{count}")
        cases = throughput_cases(tools, base, files)
        cases = [c for c in cases if not names or c.name in names]
        cases += extra(tools, base, files["paths"]) if extra else []
        cases = selected(cases, tools.only)
        return run_rounds(
            cases,
            count,
            repeats,
            log,
            lambda r: (
                f"{count / r.wall:>8.0f} img/s {1000 * r.cpu / count:>6.3f} ms CPU/img "
                f"{r.rss_mb:>6.1f} MB"
            ),
        )


def section(data: dict[str, Any]) -> list[str]:
    """The throughput table (always, as the first section) and the notes of the run."""
    out = [
        "",
        "## Throughput: 5,000 images of 2-30 KB from nginx (keep-alive)",
        "",
        "| tool | in flight | images/s | CPU ms/image | peak RSS MB | stored |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data.get("throughput", []):
        if r.get("failed"):  # a row whose tool did not store every image is no result
            out.append(
                f"| {r['name']} | {r['concurrency']} | failed: {'; '.join(r['failed'])} | | | "
                f"{r['stored_min']}/{r['images']} |"
            )
            continue
        out.append(
            f"| {r['name']} | {r['concurrency']} | {r['images_per_s']:,.0f} | "
            f"{r['cpu_ms_per_image']:.3f} | {r['peak_rss_mb']:.1f} | "
            f"{r['stored_min']}/{r['images']} |"
        )
    for note in data.get("notes", []):
        out.append(f"\nNote: {note}")
    return out


def cpu_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """imgflow's rows (fsync on and off), and the scale case's when it ran."""
    by_name = {r["name"]: r for r in data.get("throughput", [])}
    rows = [
        r
        for r in by_name.values()
        if r["tool"] in ("imgflow", "imgflow-nofsync") and not r.get("failed")
    ]
    scale = data.get("scale")
    files = scale if isinstance(scale, dict) else None  # (results saved before scale had rows)
    for row in scale if isinstance(scale, list) else []:
        files = row if row["tool"] == "imgflow" and not row.get("failed") else files
    if files:
        rows.append(files | {"name": f"{files['images']:,} images"})
    return rows


def goals(data: dict[str, Any]) -> list[Goal]:
    """imgflow at 64 against the peers; CPU per image."""
    rows: list[Goal] = []

    def rate(tool: str, concurrency: int) -> float | None:
        for r in data.get("throughput", []):
            if r["tool"] == tool and r["concurrency"] == concurrency and not r.get("failed"):
                return float(r["images_per_s"])
        return None

    ours = rate("imgflow", 64)
    for peer, key, label in (
        ("aiohttp", "vs_aiohttp_64", "aiohttp script at 64"),
        ("img2dataset", "vs_img2dataset_64", "img2dataset"),
    ):
        theirs = rate(peer, 64) if peer == "aiohttp" else rate(peer, 32)
        if ours and theirs:
            ratio = ours / theirs
            rows.append((f"imgflow at 64 vs {label}", f">= {GOALS[key]:.1f}x",
                         f"{ratio:.2f}x", ratio >= GOALS[key]))  # fmt: skip
        else:
            rows.append((f"imgflow at 64 vs {label}", f">= {GOALS[key]:.1f}x", "not run", None))
    # The aiohttp script writes files without fsync: the like-for-like comparison.
    same_work, script = rate("imgflow-nofsync", 64), rate("aiohttp", 64)
    if same_work and script:
        ratio = same_work / script
        rows.append(("imgflow at 64, fsync off (the script's work) vs aiohttp script at 64",
                     f">= {GOALS['vs_aiohttp_64']:.1f}x", f"{ratio:.2f}x",
                     ratio >= GOALS["vs_aiohttp_64"]))  # fmt: skip
    rows += per_image_goals(data.get("throughput", []))
    for r in cpu_rows(data):
        cpu = r["cpu_ms_per_image"]
        rows.append((f"CPU per image, {r['name']}", "<= 0.3 ms", f"{cpu:.3f} ms",
                     cpu <= GOALS["cpu_ms_per_image"]))  # fmt: skip
    return rows


def per_image_goals(rows: list[dict[str, Any]]) -> list[Goal]:
    """Issue 23's goals (PER_IMAGE), from the rows at 64 in flight that ran."""
    off, on = row_at_64(rows, "imgflow-nofsync"), row_at_64(rows, "imgflow")
    script, curl = row_at_64(rows, "aiohttp"), row_at_64(rows, "curl")
    # (label, ratio, PER_IMAGE key, whether the ratio is a floor rather than a ceiling)
    found: list[tuple[str, float, str, bool]] = []
    if off and script:
        found += [
            ("CPU per image, fsync off vs aiohttp script at 64",
             off["cpu_ms_per_image"] / script["cpu_ms_per_image"], "cpu_vs_script", False),
            ("images/s, fsync off vs aiohttp script at 64",
             off["images_per_s"] / script["images_per_s"], "rate_vs_script", True),
        ]  # fmt: skip
    if off and on:
        cost = on["cpu_ms_per_image"] / off["cpu_ms_per_image"]
        found.append(("CPU per image, fsync on (default) vs fsync off at 64", cost, "fsync_cost",
                      False))  # fmt: skip
    if off and curl:
        found.append(("images/s, fsync off vs curl --parallel-max 64",
                      off["images_per_s"] / curl["images_per_s"], "vs_curl", True))  # fmt: skip
    return [
        (label, f"{'>=' if floor else '<='} {PER_IMAGE[key]}x", f"{ratio:.2f}x",
         ratio >= PER_IMAGE[key] if floor else ratio <= PER_IMAGE[key])
        for label, ratio, key, floor in found
    ]  # fmt: skip


def baseline_goals(data: dict[str, Any]) -> list[Goal]:
    """This checkout's imgflow at 64 in flight against the baseline commit's, same run."""
    rows: list[Goal] = []
    target = VS_BASELINE
    for tool in ("imgflow", "imgflow-nofsync"):
        ours = row_at_64(data.get("throughput", []), tool)
        theirs = row_at_64(data.get("throughput", []), tool.replace("imgflow", "imgflow-baseline"))
        if not (ours and theirs):
            continue
        speed = ours["images_per_s"] / theirs["images_per_s"]
        cpu = theirs["cpu_ms_per_image"] / ours["cpu_ms_per_image"]
        label = f"{ours['name']} vs {theirs['name']}"
        rows.append((f"images/s, {label}", f">= {target}x", f"{speed:.2f}x", speed >= target))
        rows.append((f"CPU per image (inverse ratio), {label}", f">= {target}x",
                     f"{cpu:.2f}x", cpu >= target))  # fmt: skip
    return rows
