"""Latency-bound: imgflow against bench/slow_server.py, which waits 50 ms per response and
counts the requests in flight."""

from __future__ import annotations

import shutil
import statistics
from typing import Any

from harness.measure import measure
from harness.paths import WORK
from harness.report import Goal
from harness.servers import DELAY, server_stats, slow_server
from harness.tools import OUT, Tools, imgflow_argv

SETTINGS = ((5, 1), (16, 1), (64, 1), (5, 4), (16, 4))
BATCH = 250
EFFICIENCY = 0.97


def run(tools: Tools, rounds: int, repeats: int) -> list[dict[str, Any]]:
    """imgflow against a server that waits 50 ms: efficiency and the most seen in flight."""
    rows = []
    log = WORK / "logs" / "latency.log"
    with slow_server(tools.imgflow_python) as port:
        base = f"http://127.0.0.1:{port}"
        for per_batch, batches in SETTINGS:
            cap = per_batch * batches
            count = whole_waves(rounds * cap, batches)
            folder = WORK / f"lists-slow-{count}"
            folder.mkdir(parents=True, exist_ok=True)
            paths = folder / "paths"
            paths.write_text("".join(f"s/{i:06d}.gif\n" for i in range(count)))
            argv = imgflow_argv(tools, base, paths, per_batch, batches)
            argv += ["--batch-size", str(BATCH)]
            efficiencies, peaks, walls, means = [], [], [], []
            for _ in range(repeats):
                server_stats(port, "reset")
                out = WORK / "out"
                shutil.rmtree(out, ignore_errors=True)
                r = measure([a.replace(OUT, str(out)) for a in argv], log=log)
                stats = server_stats(port, "stats")
                shutil.rmtree(out, ignore_errors=True)
                ideal = cap / DELAY
                rate = stats["served"] / stats["span"] if stats["span"] else 0.0
                efficiencies.append(rate / ideal)
                peaks.append(int(stats["max_in_flight"]))
                means.append(float(stats.get("mean_in_flight", 0.0)))
                walls.append(r.wall)
                print(
                    f"  -c {per_batch} x {batches}: {stats['served']} served, "
                    f"efficiency {rate / ideal:.1%}, max in flight {stats['max_in_flight']}"
                    f", mean {means[-1]:.1f} (cap {cap})",
                    flush=True,
                )
            rows.append(
                {
                    "concurrency": per_batch,
                    "max_batches": batches,
                    "cap": cap,
                    "images": count,
                    "efficiency": statistics.median(efficiencies),
                    "max_in_flight": max(peaks),
                    "mean_in_flight": statistics.median(means),
                    "within_cap": max(peaks) <= cap,
                    "wall_s": statistics.median(walls),
                    "all_efficiencies": efficiencies,
                }
            )
    return rows


def whole_waves(count: int, batches: int) -> int:
    """`count` rounded up to whole waves of `batches` batches of BATCH paths (one batch: as
    is). A run's last batch may have at most -c requests in flight, however many batches
    are allowed, and it opens only when an earlier batch has started all its items: 3,200
    paths at -c 16 x 4 (12 batches in 3 waves, then one of 200 alone at 16 in flight) can
    reach only about 84% of the cap, what the old case measured rather than the runner's
    steady state. Whole waves measure that."""
    if batches == 1:
        return count
    wave = BATCH * batches
    return -(-count // wave) * wave


def section(data: dict[str, Any]) -> list[str]:
    """The latency table, when the case ran."""
    if "latency" not in data:
        return []
    out = [
        "",
        f"## Latency-bound: server waits {DELAY * 1000:.0f} ms per response",
        "",
        f"{BATCH} paths per batch, 50 rounds of the cap (with several batches, rounded up "
        "to whole waves of batches). Efficiency = images/s "
        "between the first request and the last response, seen by the server, "
        "/ (cap / 0.05 s); mean in flight: the server's, over the same span.",
        "",
        "| -c | batches | cap in flight | images | efficiency | max in flight seen "
        "| mean in flight |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["latency"]:
        out.append(
            f"| {r['concurrency']} | {r['max_batches']} | {r['cap']} | {r['images']} | "
            f"{r['efficiency']:.1%} | {r['max_in_flight']} | {r.get('mean_in_flight', 0.0):.1f} |"
        )
    return out


def goals(data: dict[str, Any]) -> list[Goal]:
    """Efficiency, and never more in flight than the cap."""
    rows: list[Goal] = []
    for r in data.get("latency", []):
        eff = r["efficiency"]
        rows.append(
            (f"latency-bound efficiency, -c {r['concurrency']} x {r['max_batches']}",
             ">= 97%", f"{eff:.1%}", eff >= EFFICIENCY)
        )  # fmt: skip
        rows.append(
            (f"max in flight, -c {r['concurrency']} x {r['max_batches']}",
             f"<= {r['cap']}", str(r["max_in_flight"]), bool(r["within_cap"]))
        )  # fmt: skip
    return rows
