"""imgflow against peer downloaders on loopback; started by ``bench/run`` (see bench/README.md).

Cases: throughput (5,000 images from nginx), large images (200 of 1-8 MB from nginx: MB/s,
CPU per MB and peak RSS against curl and the aiohttp script), latency-bound efficiency (a
server that waits 50 ms and counts requests in flight), scale (50,000 images), start-up
(`imgflow --help`) and the AWS cost case (``bench/aws_cost.py`` when present). Every tool
runs as a child process measured with ``os.wait4``: wall time, user+sys CPU and peak RSS of
the process tree it waits for. Writes ``bench/results/<date>[-quick].md`` and ``.json``.

This file only chooses the cases and assembles the results file: the harness (folders,
servers, timing, tools, the results file's frame) is bench/harness/, each case (or group of
cases: wire, throttle) a module of bench/cases/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import time
from typing import Any

from cases import aws, hosts, large, latency, scale, startup, throttle, throughput, wire
from harness.corpus import make_corpus, make_large_corpus
from harness.paths import WORK
from harness.report import Goal, goals_table, header, machine, save
from harness.tools import clear_spent, find_tools


def goals(data: dict[str, Any]) -> list[Goal]:
    """(goal, target, measured, met) for each goal of the issue that this run measured."""
    return [
        *throughput.goals(data),
        *latency.goals(data),
        *scale.goals(data),
        *large.goals(data),
        *throughput.baseline_goals(data),
        *(throttle.goals(data["throttle"]) if data.get("throttle") else []),
        *startup.goals(data),
        *aws.goals(data),
        *hosts.goals(data),
    ]


def markdown(data: dict[str, Any]) -> str:
    """The results file: every case that ran, in a fixed order, then the goals."""
    out = header(data)
    for case in (throughput, large, latency, scale, startup, aws, hosts):
        out += case.section(data)
    if data.get("wire"):
        out += wire.section(data["wire"])
    if data.get("throttle"):
        out += throttle.section(data["throttle"])
    out += goals_table(goals(data))
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per case (< 3 minutes)")
    parser.add_argument("--imgflow-python", default=sys.executable)
    parser.add_argument("--cases", default="throughput,large,latency,scale,startup,aws,proxy,tls")
    parser.add_argument("--baseline-python", help="python of a venv with another imgflow")
    parser.add_argument("--baseline-name", default="baseline", help="its label (a git ref)")
    parser.add_argument("--no-img2dataset", action="store_true")
    parser.add_argument(
        "--tools",
        default="",
        help="only these tools in the throughput and large cases, e.g. "
        "'imgflow*,curl,aiohttp' (imgflow* is every imgflow row, the baseline's too)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only; write no results")
    parser.add_argument(
        "--repeats", type=int, help="runs per tool (default 3, or 1 with --quick), at full size"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    clear_spent()  # what a stopped run set aside
    try:
        run(args)
    finally:
        clear_spent()


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    cases = set(args.cases.split(","))
    repeats = args.repeats or (1 if args.quick else 3)
    tools = find_tools(args)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    corpus = WORK / "corpus"
    data: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "repeats": repeats,
        "command": "bench/run" + (" --quick" if args.quick else ""),
        "machine": machine(),
        "notes": [],
    }
    for name, path in (
        ("aiohttp", tools.peers_python),
        ("img2dataset", tools.img2dataset),
        ("curl", tools.curl),
        ("wget", tools.wget),
        ("aria2c", tools.aria2c),
    ):
        if path is None:
            data["notes"].append(f"{name} is not installed, so it was skipped.")  # fmt: skip
    small, big = 5_000, 50_000
    wire_cases = cases & {"proxy", "tls", "baseline"}  # cases/wire.py
    if cases & {"throughput", "scale"} or wire_cases:
        make_corpus(corpus, big if "scale" in cases else small)
    if "throughput" in cases:
        print(f"throughput: {small:,} images, {repeats} run(s) per tool", flush=True)
        data["throughput"] = throughput.run(tools, corpus, small, repeats)
    if "large" in cases:
        print(f"large images: {large.COUNT} of 1-8 MB, {repeats} run(s) per tool", flush=True)
        large_corpus = WORK / "corpus-large"
        make_large_corpus(large_corpus, large.COUNT)
        data["large"] = large.run(tools, large_corpus, large.COUNT, repeats)
    if "latency" in cases:
        print("latency-bound: server waits 50 ms", flush=True)
        data["latency"] = latency.run(tools, 50, repeats)
    if "scale" in cases:
        print(f"scale: the same rows at {scale.SMALL:,} then {big:,} images", flush=True)
        data["scale_5k"] = scale.run(tools, corpus, scale.SMALL, repeats)
        data["scale"] = scale.run(tools, corpus, big, repeats)
    if "startup" in cases:
        data["startup"] = startup.run(tools, 20)
        st = data["startup"]
        print(f"start-up: --help {st['help_s']:.3f} s, tab {st['complete_s']:.3f} s", flush=True)
    if "aws" in cases:
        print("aws cost: bench/aws_cost.py (imgflow and the original design, on moto)", flush=True)
        data["aws_cost"] = aws.run(tools.imgflow_python)
        print(f"  {data['aws_cost']['status']}", flush=True)
        for line in (
            data["aws_cost"].get("stderr_tail", []) if data["aws_cost"]["status"] != "ok" else []
        ):
            print(f"    {line}", flush=True)
    if wire_cases:
        data["wire"] = wire.run(wire_cases, tools, corpus, small, repeats)
    if "hosts" in cases:  # cases/hosts.py, only when named
        per_host = hosts.PER_HOST_QUICK if args.quick else hosts.PER_HOST
        make_corpus(corpus, per_host)
        print(f"many hosts: {hosts.HOSTS} x {per_host:,} images, one table", flush=True)
        data["hosts"] = hosts.run(tools, corpus, per_host, repeats)
    if cases & {"throttle", "aws-throttle"}:  # cases/throttle.py, one run per case
        print("throttle: imgflow against nginx's limit_req and limit_conn", flush=True)
        data["throttle"] = throttle.run(tools, cases)
    data["seconds"] = time.perf_counter() - started
    text = markdown(data)
    print("\n" + text)
    if not args.no_save:
        stem = save(data, text)
        print(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
    main()
