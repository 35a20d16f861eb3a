"""Throttle cases of the benchmark: imgflow against nginx's own rate and connection limits.

``bench/run --cases throttle`` (and ``aws-throttle``: bench/aws_throttle.py). Each case
runs the harness's nginx (NGINX_CONF) with a committed snippet from bench/nginx/ added to
its http block, and an access log of ``$msec $request_time $status`` per request:

- limit_req_429, limit_req_503, limit_req_retry_after: ``limit_req`` 5 r/s without burst
  (refused with 429, with nginx's default 503, and 429 plus ``Retry-After: 1``); imgflow
  ``-c 8``, 100 small images. Goal: 100/100 stored, wall time <= 1.3 x 100 / 5 s.
- limit_conn: ``limit_conn`` 2 (503), each answer sent at 20 MB/s; ``-c 8``, 16 images of
  20 MB. Goal: 16/16 stored.
- rate_20: no limits, imgflow ``--rate 20``, 200 small images. Goals: at most 20 + burst
  request starts in any one second (sliding window and calendar second), and requests/s
  over their span within 5% of 20.

Each case runs once (the whole set takes about two minutes). Reported per case: images
stored, wall time (imgflow's process), imgflow's attempts (the sum over its records),
nginx's answers by status, and imgflow's own "throttled by" line.
"""

from __future__ import annotations

import bisect
import http.client
import json
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.corpus import corpus_paths, make_corpus, write_images
from harness.measure import measure
from harness.paths import BENCH, MB, ROOT, WORK
from harness.report import Goal
from harness.servers import NGINX_CONF, nginx
from harness.tools import OUT, Tools, imgflow_argv

CONFS = BENCH / "nginx"
# The harness's nginx, logging each request's end ($msec) and duration for the case's figures.
LOG_FORMAT = (
    "    log_format throttle '$msec $request_time $status \"$request\"';\n"
    "    access_log {dir}/access.log throttle;\n"
)
assert "    access_log off;\n" in NGINX_CONF and "    server {{\n" in NGINX_CONF

SMALL = 100
RATE_IMAGES = 200
LARGE = 16
LARGE_BYTES = 20 * MB
LIMIT_RATE = 5.0  # requests per second in bench/nginx/limit_req_*.conf
SEND_RATE = 20 * MB  # bytes per second per answer in bench/nginx/limit_conn.conf
CONNS = 2  # limit_conn in bench/nginx/limit_conn.conf
FIXED_RATE = 20.0  # imgflow's --rate in the rate_20 case
BURST = 1  # imgflow's default --burst
GOALS = {"wall_vs_ideal": 1.3, "rate_tolerance": 0.05}


@dataclass(frozen=True)
class Case:
    """One throttle case: its nginx snippet, its images and imgflow's flags."""

    name: str
    conf: str  # file in bench/nginx/
    what: str
    images: str  # "small" or "large"
    count: int
    flags: tuple[str, ...]  # besides -c 8 --max-batches 1
    ideal: float | None  # seconds the server's limit allows at best (None: no limit)


CASES = (
    Case("limit_req_429", "limit_req_429.conf", "limit_req 5 r/s, burst 0, 429", "small",
         SMALL, (), SMALL / LIMIT_RATE),
    Case("limit_req_503", "limit_req_503.conf", "limit_req 5 r/s, burst 0, 503 (default)",
         "small", SMALL, (), SMALL / LIMIT_RATE),
    Case("limit_req_retry_after", "limit_req_retry_after.conf",
         "limit_req 5 r/s, burst 0, 429 + Retry-After: 1", "small", SMALL, (),
         SMALL / LIMIT_RATE),
    Case("limit_conn", "limit_conn.conf", "limit_conn 2 (503), 20 MB/s per answer", "large",
         LARGE, (), LARGE * LARGE_BYTES / SEND_RATE / CONNS),
    Case("rate_20", "plain.conf", "no limits, imgflow --rate 20", "small", RATE_IMAGES,
         ("--rate", f"{FIXED_RATE:g}"), None),
)  # fmt: skip


def template(conf: Path) -> str:
    """NGINX_CONF with the access log on and `conf`'s directives in its http block."""
    snippet = conf.read_text().replace("{", "{{").replace("}", "}}")
    return NGINX_CONF.replace("    access_log off;\n", LOG_FORMAT).replace(
        "    server {{\n", f"{snippet}    server {{{{\n"
    )


# -- the corpus and nginx's log ------------------------------------------------------------


def corpus() -> tuple[Path, list[str], list[str]]:
    """bench/work/corpus-throttle: RATE_IMAGES small images and LARGE of 20 MB (kept)."""
    root = WORK / "corpus-throttle"
    make_corpus(root, RATE_IMAGES)
    large = [(f"big/{i:02d}.jpg", LARGE_BYTES) for i in range(LARGE)]
    write_images(root, f".complete-big-{LARGE}", large, f"{LARGE} images of 20 MB")
    return root, corpus_paths(RATE_IMAGES), [path for path, _ in large]


@dataclass(frozen=True)
class Logged:
    """One request in nginx's access log."""

    start: float  # $msec - $request_time: when nginx read its first byte
    end: float  # $msec
    status: int
    request: str


def read_log(path: Path) -> list[Logged]:
    entries = []
    for line in path.read_text().splitlines():
        msec, took, status, request = line.split(" ", 3)
        end = float(msec)
        entries.append(Logged(end - float(took), end, int(status), request.strip('"')))
    return entries


def peak_in_window(starts: list[float], window: float = 1.0) -> int:
    """The most request starts in any half-open interval [t, t + window)."""
    starts = sorted(starts)
    return max(
        (bisect.bisect_left(starts, t + window) - i for i, t in enumerate(starts)), default=0
    )


def peak_per_second(starts: list[float]) -> int:
    """The most request starts in one calendar second (of the server's clock)."""
    return max(Counter(int(t) for t in starts).values(), default=0)


def probe_retry_after(port: int) -> str | None:
    """Two requests at once to a path that is not there: the second is refused by the
    limit (the limit applies before the 404). Its Retry-After header, as a client sees it."""
    seen: str | None = None
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/_probe")
            response = conn.getresponse()
            response.read()
            if response.status in (429, 503):
                seen = f"{response.status} Retry-After: {response.getheader('Retry-After')}"
        finally:
            conn.close()
    time.sleep(2 / LIMIT_RATE)  # let the limit's bucket drain before the run
    return seen


# -- running a case -------------------------------------------------------------------------


def run_case(case: Case, tools: Tools, root: Path, paths: list[str]) -> dict[str, Any]:
    folder = WORK / "nginx-throttle" / case.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = WORK / "logs" / f"throttle-{case.name}.log"
    log.unlink(missing_ok=True)
    out = WORK / "out-throttle"
    shutil.rmtree(out, ignore_errors=True)
    listing = folder / "paths"
    listing.write_text("".join(f"{p}\n" for p in paths))
    doc_file = folder / "imgflow.json"
    row: dict[str, Any] = {"name": case.name, "what": case.what, "images": len(paths)}
    with nginx(root, folder, template(CONFS / case.conf)) as port:
        if case.name == "limit_req_retry_after":
            row["probe"] = probe_retry_after(port)
        argv = imgflow_argv(tools, f"http://127.0.0.1:{port}", listing, 8, 1)
        argv = [a.replace(OUT, str(out)) for a in argv] + list(case.flags)
        result = measure(argv, log=log, stdout_to=doc_file, timeout=300)
    shutil.rmtree(out, ignore_errors=True)
    entries = [e for e in read_log(folder / "access.log") if "/_probe" not in e.request]
    doc = json.loads(doc_file.read_text()) if doc_file.stat().st_size else {}
    records = doc.get("results", [])
    stderr = log.read_text(errors="replace") if log.exists() else ""
    statuses = Counter(e.status for e in entries)
    starts = [e.start for e in entries]
    span = max(e.end for e in entries) - min(starts) if entries else 0.0
    row |= {
        "rc": result.rc,
        "stored": doc.get("summary", {}).get("stored", 0),
        "failed": doc.get("summary", {}).get("failed", 0),
        "wall_s": result.wall,
        "server_span_s": span,
        "ideal_s": case.ideal,
        "attempts": sum(int(r.get("attempts") or 0) for r in records),
        "max_attempts": max((int(r.get("attempts") or 0) for r in records), default=0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sorted({str(r["error"]) for r in records if r.get("error")})[:3],
        "throttled_line": next(
            (line for line in stderr.splitlines() if line.startswith("throttled by")), ""
        ),
        "nginx_conf": str(folder / "nginx.conf"),
    }
    if case.name == "rate_20":
        first, last = min(starts), max(starts)
        row["peak_sliding_1s"] = peak_in_window(starts)
        row["peak_calendar_1s"] = peak_per_second(starts)
        row["requests_per_s"] = (len(starts) - 1) / (last - first) if last > first else 0.0
    return row


def show(row: dict[str, Any]) -> str:
    text = (
        f"  {row['name']:<22} stored {row['stored']}/{row['images']} in {row['wall_s']:.1f} s,"
        f" {row['attempts']} attempts, nginx {row['statuses']}"
    )
    if "requests_per_s" in row:
        text += (
            f", peak 1 s {row['peak_sliding_1s']} (calendar {row['peak_calendar_1s']}),"
            f" {row['requests_per_s']:.2f} req/s"
        )
    return text


def run(tools: Tools, cases: set[str]) -> dict[str, Any]:
    """The local cases when `cases` has "throttle", the aws one when it has "aws-throttle";
    a case that fails gets a note with its cause."""
    data: dict[str, Any] = {"rows": []}
    if "throttle" in cases:
        root, small, large = corpus()
        for case in CASES:
            paths = large if case.images == "large" else small[: case.count]
            try:
                row = run_case(case, tools, root, paths)
            except (OSError, subprocess.SubprocessError, SystemExit, ValueError) as exc:
                row = {"name": case.name, "what": case.what, "note": f"failed: {exc}"}
                print(f"  {case.name} failed: {exc}", flush=True)
            else:
                print(show(row), flush=True)
            data["rows"].append(row)
    if "aws-throttle" in cases:
        data["aws"] = aws(tools.imgflow_python)
        for run in data["aws"].get("runs", []):
            print(f"  aws {run['name']:<18} stored {run['stored']}/{run['images']} in "
                  f"{run['wall_s']:.1f} s, {run['attempts']} attempts, answers {run['answers']}",
                  flush=True)  # fmt: skip
        if "note" in data["aws"]:
            print(f"  aws-throttle: {data['aws']['note']}", flush=True)
    return data


def aws(python: str) -> dict[str, Any]:
    """bench/aws_throttle.py in imgflow's interpreter (it needs moto): its JSON summary."""
    summary = WORK / "aws_throttle.json"
    summary.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [python, str(BENCH / "aws_throttle.py"), "--json", str(summary)],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"note": "failed: bench/aws_throttle.py took over 300 s"}
    if done.returncode != 0 or not summary.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"note": f"failed (exit {done.returncode}): {tail}"}
    result: dict[str, Any] = json.loads(summary.read_text())
    return result


# -- report ---------------------------------------------------------------------------------


def goals(data: dict[str, Any]) -> list[Goal]:
    """(goal, target, measured, met) for the throttle cases that ran."""
    out: list[Goal] = []
    for row in data.get("rows", []):
        if "note" in row:
            out.append((f"throttle {row['name']}", "runs", row["note"], False))
            continue
        name, stored, images = row["name"], row["stored"], row["images"]
        out.append((f"throttle {name}: stored", f"{images}/{images}", f"{stored}/{images}",
                    stored == images))  # fmt: skip
        if name.startswith("limit_req"):
            limit = GOALS["wall_vs_ideal"] * row["ideal_s"]
            out.append((f"throttle {name}: wall time", f"<= {limit:.0f} s",
                        f"{row['wall_s']:.1f} s ({row['wall_s'] / row['ideal_s']:.2f}x ideal)",
                        row["wall_s"] <= limit))  # fmt: skip
        if "requests_per_s" in row:
            most = FIXED_RATE + BURST
            for key, label in (("peak_sliding_1s", "any 1 s"), ("peak_calendar_1s", "a second")):
                out.append((f"throttle rate_20: requests in {label}", f"<= {most:.0f}",
                            str(row[key]), row[key] <= most))  # fmt: skip
            rate = row["requests_per_s"]
            off = abs(rate - FIXED_RATE) / FIXED_RATE
            out.append(("throttle rate_20: requests/s over their span",
                        f"{FIXED_RATE:g} +- 5%", f"{rate:.2f} ({off:.1%} off)",
                        off <= GOALS["rate_tolerance"]))  # fmt: skip
    for run in data.get("aws", {}).get("runs", []):
        stored, images = run["stored"], run["images"]
        out.append((f"throttle aws {run['name']}: stored", f"{images}/{images}",
                    f"{stored}/{images}", stored == images))  # fmt: skip
    if "note" in data.get("aws", {}):
        out.append(("throttle aws", "runs", data["aws"]["note"], False))
    return out


def section(data: dict[str, Any]) -> list[str]:
    """The throttle section of the results file."""
    out = [
        "",
        "## Throttled: imgflow against nginx's limit_req and limit_conn (bench/nginx/)",
        "",
        "One run per case, `-c 8`. Wall time is imgflow's process; attempts are summed over "
        "its records; the statuses are nginx's access log.",
        "",
        "| case | server | stored | wall s | ideal s | attempts | nginx answers | imgflow |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in data.get("rows", []):
        if "note" in r:
            out.append(f"| {r['name']} | {r['what']} | {r['note']} | | | | | |")
            continue
        ideal = f"{r['ideal_s']:.0f}" if r["ideal_s"] else "-"
        answers = ", ".join(f"{v} x {k}" for k, v in r["statuses"].items())
        out.append(
            f"| {r['name']} | {r['what']} | {r['stored']}/{r['images']} | {r['wall_s']:.1f} | "
            f"{ideal} | {r['attempts']} | {answers} | {r['throttled_line'] or '-'} |"
        )
    for r in data.get("rows", []):
        if r.get("probe"):
            out.append(f"\n{r['name']}: a refused request's answer: `{r['probe']}`")
        if "requests_per_s" in r:
            out.append(
                f"\nrate_20: most request starts in any 1 s: {r['peak_sliding_1s']}, in one "
                f"calendar second: {r['peak_calendar_1s']}; {r['requests_per_s']:.2f} "
                "requests/s between the first and the last start."
            )
    aws = data.get("aws")
    if aws:
        out += ["", "### aws (moto): a download Lambda's host refuses its first half with 429", ""]
        if "note" in aws:
            return [*out, aws["note"]]
        out += [
            f"{aws['images']} images, batches of {aws['batch_size']}, {aws['max_batches']} "
            f"download Lambdas at once, lambdaConcur {aws['concurrency']}; the host answers "
            f"429 to its first {aws['images']} requests, 200 after (bench/aws_throttle.py).",
            "",
            "| run | job | stored | wall s | attempts | most for one image | host answers |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for r in aws["runs"]:
            answers = ", ".join(f"{v} x {k}" for k, v in r["answers"].items())
            out.append(
                f"| {r['name']} | {r['status']} | {r['stored']}/{r['images']} | "
                f"{r['wall_s']:.1f} | {r['attempts']} | {r['max_attempts']} | {answers} |"
            )
    return out
